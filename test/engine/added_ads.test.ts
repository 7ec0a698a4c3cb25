import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { readCatalogFile } from '../../src/catalog/catalog_file';
import { defaults } from '../../src/config';
import { adTowerEncoder } from '../../src/engine/ad_features';
import { addon } from '../../src/engine/addon';
import { adHistory, adPrior, campaignCodes, engineOptions, type EngineSettings } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { tinyModelDir } from '../setup/tiny_model';

const model = readModelDir(tinyModelDir);
const modelCatalog = catalogFromFile(model);
const { catalog } = modelCatalog;
const seed = readCatalogFile(model.seedCatalog!.file);
const history = adHistory(model);
const settings: EngineSettings = {
  index: { kind: 'ivf' },
  fusion: 'precomputed',
  annCandidates: 400,
  scoreCandidates: 400,
  batching: { maxBatch: 8, maxDelayUs: 500, queueCapacity: 64 },
  light: lightWeights(defaults),
};

function tensor(name: string): ArrayBuffer {
  const bytes = readFileSync(path.join(tinyModelDir, name));
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}
const storedCategorical = Int32Array.from(new BigInt64Array(tensor('ad_categorical.i64')), Number);
const storedTitle = Int32Array.from(new BigInt64Array(tensor('ad_title.i64')), Number);
const storedNumeric = new Float32Array(tensor('ad_numeric.f32'));
// The exclusion keys of `count` copies of a catalog ad.
const keysOf = (ad: number, count: number) => ({
  campaign: new Uint32Array(count).fill(campaignCodes(catalog).get(catalog.campaignId[ad]!)!),
  advertiser: Array<string>(count).fill(catalog.advertiserId[ad]!),
  category: Array<string>(count).fill(catalog.category[ad]!),
  product: Array<string>(count).fill(catalog.productId.at(ad)!),
});
const titleWidth = storedTitle.length / catalog.size;
const numericWidth = storedNumeric.length / catalog.size;
// addAds' fields for copies of catalog ads (tower inputs, prior and keys all the original's).
function copiesOf(ads: number[]) {
  const rows = <T extends Int32Array | Float32Array>(from: T, width: number): T => {
    const out = new (from.constructor as new (length: number) => T)(width * ads.length);
    ads.forEach((ad, i) => out.set(from.subarray(ad * width, (ad + 1) * width), i * width));
    return out;
  };
  const keys = ads.map((ad) => keysOf(ad, 1));
  return {
    categorical: rows(storedCategorical, 4),
    title: rows(storedTitle, titleWidth),
    numeric: rows(storedNumeric, numericWidth),
    prior: Float32Array.from(ads, (ad) => adPrior(ad, history, catalog, settings.light)),
    keys: {
      campaign: Uint32Array.from(keys.flatMap((k) => Array.from(k.campaign))),
      advertiser: keys.flatMap((k) => k.advertiser),
      category: keys.flatMap((k) => k.category),
      product: keys.flatMap((k) => k.product),
    },
  };
}

it("computes a new ad's tower inputs exactly as train/ did for the catalog's ads", () => {
  const inputs = adTowerEncoder(model)(
    seed.ads.map((ad) => {
      const campaign = seed.campaigns.find((c) => c.id === ad.campaign_id)!;
      return {
        advertiserId: ad.advertiser_id,
        category: ad.category,
        format: ad.format,
        bidType: campaign.bid_type,
        title: ad.title,
        priceMicros: ad.price_micros,
        landingQuality: ad.landing_quality,
        rating: ad.rating,
      };
    }),
  );
  expect(Array.from(inputs.categorical)).toEqual(Array.from(storedCategorical));
  expect(Array.from(inputs.title)).toEqual(Array.from(storedTitle));
  // Price, landing quality and rating (the catalog's ads have click history; new ads start at the
  // priors). the catalog rounds prices to micros, landing quality to 4 decimals, ratings to 2.
  const std = model.manifest.features.ad.numeric.std;
  const rounding = [1e-6, 5e-5, 5e-3].map((halfUnit, j) => halfUnit / std[j]! + 1e-5);
  for (let ad = 0; ad < catalog.size; ad++) {
    for (let j = 0; j < 3; j++)
      expect(Math.abs(inputs.numeric[ad * numericWidth + j]! - storedNumeric[ad * numericWidth + j]!)).toBeLessThanOrEqual(rounding[j]!);
  }
});

it.each(['fp32', 'bf16'] as const)(
  'serves ads added at run time like the catalog ads they copy, with their own eligibility and targeting (%s fusion)',
  async (fusionPrecision) => {
    const engine = await addon.openEngine(engineOptions(model, modelCatalog, history, { ...settings, fusionPrecision }));
    try {
      const request = encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'US' });
      const before = await engine.score(request, 5000);
      const copied = before.adIndex[0]!;
      const rows = (from: Int32Array | Float32Array, width: number, count: number): Int32Array | Float32Array => {
        const out = new (from.constructor as Int32ArrayConstructor | Float32ArrayConstructor)(width * count);
        for (let i = 0; i < count; i++) out.set(from.subarray(copied * width, (copied + 1) * width), i * width);
        return out;
      };
      // Two copies of the best candidate: the second targets Japan only.
      const first = await engine.addAds({
        categorical: rows(storedCategorical, 4, 2) as Int32Array,
        title: rows(storedTitle, titleWidth, 2) as Int32Array,
        numeric: rows(storedNumeric, numericWidth, 2) as Float32Array,
        prior: Float32Array.of(adPrior(copied, history, catalog, settings.light), adPrior(copied, history, catalog, settings.light)),
        keys: keysOf(copied, 2),
        targeting: [{ ad: 1, rules: [[{ type: 'geo', value: 'JP' }]] }],
      });
      expect(first).toBe(catalog.size);
      expect(engine.stats().ads).toBe(catalog.size + 2);
      expect(engine.stats().addedInIndex).toBe(2);

      const after = await engine.score(request, 5000);
      const original = after.adIndex.indexOf(copied);
      const copy = after.adIndex.indexOf(first);
      expect(original).toBeGreaterThanOrEqual(0);
      expect(copy).toBeGreaterThanOrEqual(0);
      expect(after.adIndex.includes(first + 1)).toBe(false);
      expect(after.light[copy]).toBeCloseTo(after.light[original]!, 5);
      expect(after.ctrLogit[copy]).toBeCloseTo(after.ctrLogit[original]!, 4);
      expect(after.cvrLogit[copy]).toBeCloseTo(after.cvrLogit[original]!, 4);

      // The copies share the original's keys, so the request's exclusions keep all three out.
      const exclusions = [
        encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'US', blockedAdvertisers: [catalog.advertiserId[copied]!] }),
        encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'US', blockedCategories: [catalog.category[copied]!] }),
        encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'US', blockedProducts: [catalog.productId.at(copied)!] }),
      ];
      for (const blocked of exclusions) {
        const result = Array.from((await engine.score(blocked, 5000)).adIndex);
        expect(result.length).toBeGreaterThan(0);
        expect(result).not.toContain(copied);
        expect(result).not.toContain(first);
      }
      const capped = Array.from((await engine.score(request, 5000, keysOf(copied, 1).campaign)).adIndex);
      expect(capped.length).toBeGreaterThan(0);
      expect(capped).not.toContain(copied);
      expect(capped).not.toContain(first);

      const japan = await engine.score(encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'JP' }), 5000);
      expect(japan.adIndex.includes(first + 1)).toBe(true);

      engine.setEligibility(Uint32Array.of(first), Uint8Array.of(0));
      expect((await engine.score(request, 5000)).adIndex.includes(first)).toBe(false);
      engine.setPriors(Uint32Array.of(first + 1), Float32Array.of(0.5));
    } finally {
      engine.close();
    }
  },
);

it('refuses malformed additions and keeps serving', async () => {
  const engine = await addon.openEngine(engineOptions(model, modelCatalog, history, settings));
  try {
    const one = {
      categorical: storedCategorical.slice(0, 4),
      title: storedTitle.slice(0, titleWidth),
      numeric: storedNumeric.slice(0, numericWidth),
      prior: Float32Array.of(0.1),
      keys: keysOf(0, 1),
    };
    await expect(engine.addAds({ ...one, keys: keysOf(0, 2) })).rejects.toThrow(/keys need one entry per ad/);
    await expect(engine.addAds({ ...one, keys: { ...keysOf(0, 1), product: [] } })).rejects.toThrow(/ad keys need/);
    await expect(engine.addAds({ ...one, categorical: storedCategorical.slice(0, 3) })).rejects.toThrow(/4 values per ad/);
    await expect(engine.addAds({ ...one, categorical: Int32Array.of(1_000_000, 1, 1, 1) })).rejects.toThrow(/ad tower refused/);
    await expect(engine.addAds({ ...one, numeric: new Float32Array(numericWidth).fill(Number.NaN) })).rejects.toThrow(/finite/);
    await expect(engine.addAds({ ...one, prior: new Float32Array(0) })).rejects.toThrow(/no ads/);
    expect(() => engine.addAds({ ...one, title: new Float32Array(titleWidth) as unknown as Int32Array })).toThrow(/Int32Array/);
    expect(engine.stats().ads).toBe(catalog.size);
    expect((await engine.score(encodeAdRequest({ query: 'dog food' }), 5000)).adIndex.length).toBeGreaterThan(0);
  } finally {
    engine.close();
  }
});

describe.each(['sq8', 'float'] as const)('added ads in the IVF lists (%s scan)', (ivfScan) => {
  // One list probed per query, k above the catalog: a query returns exactly the probed list's ads,
  // so an added ad is returned exactly when it sits in that list. An exact scan of the added ads
  // beside the index would return every copy.
  const oneList: EngineSettings = { ...settings, index: { kind: 'ivf', nprobe: 1, ivfScan }, keywordCandidates: 0 };
  const request = encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'US' });

  it('puts a copy in the list of its original: found where the original is, not where it is not', async () => {
    const engine = await addon.openEngine(engineOptions(model, modelCatalog, history, oneList));
    try {
      const before = Array.from((await engine.score(request, 5000)).adIndex);
      expect(before.length).toBeGreaterThan(0);
      expect(before.length).toBeLessThan(catalog.size / 2);
      const inside = before[0]!;
      // Untargeted ones only: a targeted ad may be missing from `before` for its rules, not its list,
      // and its copy (added without them) would then be found in the probed list.
      const targeted = new Set(modelCatalog.targeting.map(({ ad }) => ad));
      const outside = Array.from({ length: catalog.size }, (_, ad) => ad)
        .filter((ad) => !before.includes(ad) && !targeted.has(ad))
        .slice(0, 8);
      const first = await engine.addAds(copiesOf([inside, ...outside]));
      expect(first).toBe(catalog.size);
      expect(engine.stats().addedInIndex).toBe(1 + outside.length);

      const after = await engine.score(request, 5000);
      const returned = Array.from(after.adIndex);
      expect(returned).toContain(first);
      for (let i = 0; i < outside.length; i++) expect(returned).not.toContain(first + 1 + i);
      expect(returned.length).toBe(before.length + 1);
      // Scored like its original: same exact re-ranked similarity and prior, hence the same light score.
      expect(after.light[returned.indexOf(first)]).toBeCloseTo(after.light[returned.indexOf(inside)]!, 5);

      // Retired like any ad; eligibility is the same filter inside the list scan.
      engine.setEligibility(Uint32Array.of(first), Uint8Array.of(0));
      expect(Array.from((await engine.score(request, 5000)).adIndex)).not.toContain(first);
    } finally {
      engine.close();
    }
  });

  it('admits an added ad by its targeting inside the list scan, and shows it only to batches after the add', async () => {
    const engine = await addon.openEngine(engineOptions(model, modelCatalog, history, oneList));
    try {
      const before = await engine.score(request, 5000);
      const inside = before.adIndex[0]!;
      const copies = copiesOf([inside, inside]);
      const pending = Array.from({ length: 16 }, () => engine.score(request, 5000));
      const first = await engine.addAds({ ...copies, targeting: [{ ad: 1, rules: [[{ type: 'geo', value: 'JP' }]] }] });
      const during = await Promise.all(pending);
      // Each batch reads one snapshot: with the copy (added with its eligibility and priors) or without.
      for (const result of during) {
        const returned = Array.from(result.adIndex);
        expect(returned.every((ad) => ad < catalog.size + 2)).toBe(true);
        expect(returned).not.toContain(first + 1);
        if (returned.includes(first)) expect(result.light[returned.indexOf(first)]).toBeCloseTo(result.light[returned.indexOf(inside)]!, 5);
      }
      expect(Array.from(before.adIndex)).not.toContain(first);
      const us = Array.from((await engine.score(request, 5000)).adIndex);
      expect(us).toContain(first);
      expect(us).not.toContain(first + 1);
      const japanRequest = encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'JP' });
      const japan = Array.from((await engine.score(japanRequest, 5000)).adIndex);
      expect(japan).toContain(inside);
      expect(japan).toContain(first + 1);
      expect(japan).toContain(first);
    } finally {
      engine.close();
    }
  });
});

it.each(['flat', 'hnsw'] as const)('serves added ads through the exact scan beside a %s index, which takes none into itself', async (kind) => {
  const engine = await addon.openEngine(engineOptions(model, modelCatalog, history, { ...settings, index: { kind }, keywordCandidates: 0 }));
  try {
    const request = encodeAdRequest({ query: 'running shoes', userId: model.userIds[0], country: 'US' });
    const best = (await engine.score(request, 5000)).adIndex[0]!;
    const first = await engine.addAds({ ...copiesOf([best, best]), targeting: [{ ad: 1, rules: [[{ type: 'geo', value: 'JP' }]] }] });
    expect(engine.stats().addedInIndex).toBe(0);
    const after = Array.from((await engine.score(request, 5000)).adIndex);
    expect(after).toContain(first);
    expect(after).not.toContain(first + 1);
  } finally {
    engine.close();
  }
});
