import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readCatalogFile } from '../../src/catalog/catalog_file';
import { defaults } from '../../src/config';
import { addon, type NativeEngine, type ScoreResult } from '../../src/engine/addon';
import { adTowerEncoder } from '../../src/engine/ad_features';
import { adHistory, adPrior, campaignCodes, type EngineSettings, engineOptions, openEngine } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir, rehashManifestFile } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { type AdRequestSpec, encodeAdRequest } from '../../src/protocol/encode_request';
import { Placement } from '../../src/protocol/schema';
import { copyOfModel } from '../helpers/models';
import { tinyDlrmModelDir, tinyModelDir } from '../setup/tiny_model';

// Configured 'precomputed': a DLRM directory must still be served by its TorchScript score.
const settings: EngineSettings = {
  index: { kind: 'flat' },
  fusion: 'precomputed',
  annCandidates: 200,
  scoreCandidates: 40,
  batching: { maxBatch: 8, maxDelayUs: 1000, queueCapacity: 64 },
  light: lightWeights(defaults),
};

const dlrm = readModelDir(tinyDlrmModelDir);
const dlrmSeed = readCatalogFile(dlrm.seedCatalog!.file);
const modelCatalog = catalogFromFile(dlrm);
const { catalog } = modelCatalog;
const placements = [Placement.Search, Placement.ProductPage, Placement.Category, Placement.Homepage];
// A fixed instant: a request without a timestamp is featurised at the current local hour and
// weekday, which moves the context embedding and so which ads each request retrieves (at 00:xx UTC
// the ad added below reached no shortlist and the test failed).
const requestTime = BigInt(Date.UTC(2026, 11, 1, 22, 30));
const requests: AdRequestSpec[] = Array.from({ length: 8 }, (_, i) => ({
  timestampMs: requestTime,
  placement: placements[i % placements.length],
  query: i % placements.length === 0 ? ['dog food', 'yoga mat'][i % 2] : undefined,
  categoryId: catalog.category[(i * 13) % catalog.size],
  userId: i % 3 === 2 ? `new-user-${i}` : dlrm.userIds[i],
}));
const bodies = requests.map((spec) => encodeAdRequest(spec));

const engines: NativeEngine[] = [];
async function open(dir: string): Promise<NativeEngine> {
  const model = readModelDir(dir);
  const engine = await openEngine(model, catalogFromFile(model), adHistory(model), settings);
  engines.push(engine);
  return engine;
}
const scoreAll = (engine: NativeEngine): Promise<ScoreResult[]> => Promise.all(bodies.map((body) => engine.score(body, 5000)));

let towers: ScoreResult[];
let ranked: ScoreResult[];

beforeAll(async () => {
  towers = await scoreAll(await open(tinyModelDir));
  ranked = await scoreAll(await open(tinyDlrmModelDir));
});

afterAll(() => {
  for (const engine of engines) engine.close();
});

/**
 * Copies of the tiny DLRM, each with one row of one id table moved (label -> [table, row]), so only
 * the ads reading that row score differently (one Python run for all of them: starting torch is the
 * slow part).
 */
function withIdRowsMoved(rows: Record<string, [string, number]>): Record<string, string> {
  const dirs = Object.fromEntries(Object.keys(rows).map((label) => [label, copyOfModel(tinyDlrmModelDir, `dlrm-${label}`)]));
  const script = [
    'import json, sys, torch',
    'for path, table, row in json.loads(sys.argv[1]):',
    '    model = torch.jit.load(path)',
    '    with torch.no_grad(): getattr(model, table).weight[row] += 1.0',
    '    model.save(path)',
  ].join('\n');
  const jobs = Object.entries(rows).map(([label, [table, row]]) => [path.join(dirs[label]!, 'model.pt'), table, row]);
  execFileSync('/usr/bin/python3', ['-c', script, JSON.stringify(jobs)]);
  for (const dir of Object.values(dirs)) rehashManifestFile(dir, 'model.pt');
  return dirs;
}

describe('the DLRM scorer in the engine', () => {
  it('serves through the towers it shares with the multi-tower model, with its own scores', () => {
    expect(dlrm.manifest.scorer).toBe('dlrm');
    let differing = 0;
    for (let i = 0; i < bodies.length; i++) {
      // Same towers, so the same retrieval and lightweight shortlist; only the ranking score differs.
      expect(Array.from(ranked[i]!.adIndex)).toEqual(Array.from(towers[i]!.adIndex));
      expect(ranked[i]!.adIndex.length).toBe(40);
      expect(ranked[i]!.ctrLogit.every(Number.isFinite) && ranked[i]!.cvrLogit.every(Number.isFinite)).toBe(true);
      differing += ranked[i]!.ctrLogit.filter((logit, j) => Math.abs(logit - towers[i]!.ctrLogit[j]!) > 1e-3).length;
    }
    expect(differing).toBeGreaterThan(bodies.length * 30);
  });

  it('passes each candidate its own ad, campaign, advertiser and category ids', async () => {
    const target = ranked[0]!.adIndex[0]!;
    const campaign = campaignCodes(catalog);
    const keyOf: Record<string, (ad: number) => unknown> = {
      ad: (ad) => ad,
      campaign: (ad) => campaign.get(catalog.campaignId[ad]!),
      advertiser: (ad) => catalog.advertiserId[ad],
      category: (ad) => catalog.category[ad],
    };
    const rowOf: Record<string, number> = {
      ad: target,
      campaign: campaign.get(catalog.campaignId[target]!)!,
      advertiser: dlrmSeed.advertisers.findIndex((advertiser) => advertiser.id === catalog.advertiserId[target]),
      category: dlrm.manifest.categories.indexOf(catalog.category[target]!),
    };
    for (const row of Object.values(rowOf)) expect(row).toBeGreaterThanOrEqual(0);
    const dirs = withIdRowsMoved(Object.fromEntries(Object.entries(rowOf).map(([table, row]) => [table, [table, row]])));
    for (const [table, key] of Object.entries(keyOf)) {
      const moved = await scoreAll(await open(dirs[table]!));
      let changed = 0;
      for (let i = 0; i < bodies.length; i++) {
        expect(Array.from(moved[i]!.adIndex)).toEqual(Array.from(ranked[i]!.adIndex));
        ranked[i]!.adIndex.forEach((ad, j) => {
          const reads = key(ad) === key(target);
          expect(moved[i]!.ctrLogit[j] !== ranked[i]!.ctrLogit[j], `${table} row of ad ${ad}`).toBe(reads);
          if (reads) changed++;
        });
      }
      expect(changed, table).toBeGreaterThan(0);
    }
  }, 120_000);

  it('scores an ad added while serving on the unknown ad row and its own campaign row', async () => {
    const source = ranked[0]!.adIndex[0]!;
    const ad = dlrmSeed.ads[source]!;
    const campaign = campaignCodes(catalog).get(ad.campaign_id)!;
    const bidType = dlrmSeed.campaigns.find((c) => c.id === ad.campaign_id)!.bid_type;
    // A new ad of the source ad's campaign: its tower inputs as the daemon computes them (no history yet).
    const inputs = adTowerEncoder(dlrm)([
      {
        advertiserId: ad.advertiser_id,
        category: ad.category,
        format: ad.format,
        bidType,
        title: ad.title,
        priceMicros: ad.price_micros,
        landingQuality: ad.landing_quality,
        rating: ad.rating,
      },
    ]);
    const newAd = {
      ...inputs,
      prior: Float32Array.of(adPrior(source, adHistory(dlrm), catalog, settings.light) + 10),
      keys: { campaign: Uint32Array.of(campaign), advertiser: [ad.advertiser_id], category: [ad.category], product: ['p-new'] },
    };
    const dirs = withIdRowsMoved({ unknownAd: ['ad', catalog.size], campaign: ['campaign', campaign] });
    const scoreWithNewAd = async (dir: string): Promise<{ added: number; results: ScoreResult[] }> => {
      const engine = await open(dir);
      const added = await engine.addAds(newAd);
      return { added, results: await scoreAll(engine) };
    };
    const base = await scoreWithNewAd(tinyDlrmModelDir);
    expect(base.added).toBe(catalog.size);
    for (const [label, dir] of Object.entries(dirs)) {
      const moved = await scoreWithNewAd(dir);
      let newAdScored = 0;
      for (let i = 0; i < bodies.length; i++) {
        expect(Array.from(moved.results[i]!.adIndex)).toEqual(Array.from(base.results[i]!.adIndex));
        base.results[i]!.adIndex.forEach((candidate, j) => {
          const reads = candidate === base.added || (label === 'campaign' && campaignCodes(catalog).get(catalog.campaignId[candidate]!) === campaign);
          expect(moved.results[i]!.ctrLogit[j] !== base.results[i]!.ctrLogit[j], `${label}: ad ${candidate}`).toBe(reads);
          if (candidate === base.added) newAdScored++;
        });
      }
      expect(newAdScored, label).toBeGreaterThan(0);
    }
  }, 120_000);

  it('refuses the precomputed fusion natively, and a manifest naming an unknown scorer', async () => {
    const options = engineOptions(dlrm, modelCatalog, adHistory(dlrm), settings);
    expect(options.fusion).toBe('model');
    await expect(addon.openEngine({ ...options, fusion: 'precomputed' })).rejects.toThrow(/takes ad ids needs fusion 'model'/);
    const dir = copyOfModel(tinyDlrmModelDir, 'unknown-scorer');
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...dlrm.manifest, scorer: 'wide-and-deep' }));
    expect(() => readModelDir(dir)).toThrow(/manifest names scorer "wide-and-deep"; this engine serves multitower, dlrm/);
  });
});
