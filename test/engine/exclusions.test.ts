// A request's block lists and its excluded campaigns apply inside retrieval: an excluded ad never
// takes a candidate slot, so a request whose best candidates are all excluded is answered from the
// rest instead of coming back empty.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { defaults } from '../../src/config';
import { addon, type NativeEngine } from '../../src/engine/addon';
import { adHistory, campaignCodes, engineOptions, type EngineSettings, type IndexSettings } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { type AdRequestSpec, encodeAdRequest } from '../../src/protocol/encode_request';
import { tinyModelDir } from '../setup/tiny_model';

const model = readModelDir(tinyModelDir);
const modelCatalog = catalogFromFile(model);
const { catalog } = modelCatalog;
const campaignCode = campaignCodes(catalog);
const keyOf = {
  advertiser: (ad: number) => catalog.advertiserId[ad]!,
  category: (ad: number) => catalog.category[ad]!,
  product: (ad: number) => catalog.productId.at(ad)!,
  campaign: (ad: number) => catalog.campaignId[ad]!,
};
const request: AdRequestSpec = { query: 'running shoes', userId: model.userIds[0] };

// The ANN k equals the scored N, so without exclusions inside retrieval an excluded top N leaves nothing.
const settings = (index: IndexSettings): EngineSettings => ({
  index,
  fusion: 'precomputed',
  annCandidates: 20,
  scoreCandidates: 20,
  batching: { maxBatch: 8, maxDelayUs: 500, queueCapacity: 64 },
  light: lightWeights(defaults),
});

describe.each<IndexSettings>([{ kind: 'flat' }, { kind: 'ivf' }, { kind: 'hnsw' }])('exclusions in the $kind search', (index) => {
  let engine: NativeEngine;
  let scored: number[];
  beforeAll(async () => {
    engine = await addon.openEngine(engineOptions(model, modelCatalog, adHistory(model), settings(index)));
    scored = Array.from((await engine.score(encodeAdRequest(request), 5000)).adIndex);
    expect(scored.length).toBe(20);
  });
  afterAll(() => engine.close());

  it.each([
    ['advertiser', 'blockedAdvertisers'],
    ['category', 'blockedCategories'],
    ['product', 'blockedProducts'],
  ] as const)('answers from the rest when every scored ad has a blocked %s', async (key, field) => {
    const blocked = [...new Set(scored.map(keyOf[key]))];
    // Eligible ads remain: the block list does not cover the catalog.
    expect(Array.from({ length: catalog.size }, (_, ad) => keyOf[key](ad)).filter((id) => !blocked.includes(id)).length).toBeGreaterThan(20);
    const result = await engine.score(encodeAdRequest({ ...request, [field]: blocked }), 5000);
    expect(result.adIndex.length).toBeGreaterThan(0);
    for (const ad of result.adIndex) expect(blocked).not.toContain(keyOf[key](ad));
  });

  it('answers from the rest when every scored ad belongs to an excluded campaign', async () => {
    const excluded = [...new Set(scored.map(keyOf.campaign))];
    const result = await engine.score(
      encodeAdRequest(request),
      5000,
      Uint32Array.from(excluded, (campaign) => campaignCode.get(campaign)!),
    );
    expect(result.adIndex.length).toBeGreaterThan(0);
    for (const ad of result.adIndex) expect(excluded).not.toContain(keyOf.campaign(ad));
  });
});
