import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { defaults } from '../../src/config';
import type { NativeEngine } from '../../src/engine/addon';
import { addon } from '../../src/engine/addon';
import { adHistory, adPrior, campaignCodes, engineOptions, type EngineSettings, openEngine } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { DeviceType, Gender, Placement } from '../../src/protocol/schema';
import { tinyModelDir } from '../setup/tiny_model';

const settings: EngineSettings = {
  index: { kind: 'flat' },
  fusion: 'precomputed',
  annCandidates: 200,
  scoreCandidates: 50,
  batching: { maxBatch: 16, maxDelayUs: 2000, queueCapacity: 64 },
  light: lightWeights(defaults),
};

let engine: NativeEngine;
const model = readModelDir(tinyModelDir);
const modelCatalog = catalogFromFile(model);
const { catalog } = modelCatalog;

beforeAll(async () => {
  engine = await openEngine(model, modelCatalog, adHistory(model), settings);
});

afterAll(() => engine.close());

describe('native engine over the tiny model', () => {
  it('retrieves, ranks and scores candidates for a search request', async () => {
    const result = await engine.score(encodeAdRequest({ query: 'running shoes', userId: model.userIds[0] }), 1000);
    expect(result.degraded).toBe(false);
    expect(result.adIndex.length).toBe(50);
    expect(new Set(result.adIndex).size).toBe(50);
    for (let i = 0; i < 50; i++) {
      expect(result.adIndex[i]).toBeGreaterThanOrEqual(0);
      expect(result.adIndex[i]).toBeLessThan(catalog.size);
      expect(Number.isFinite(result.ctrLogit[i])).toBe(true);
      expect(Number.isFinite(result.cvrLogit[i])).toBe(true);
      if (i > 0) expect(result.light[i]!).toBeLessThanOrEqual(result.light[i - 1]!);
    }
    expect(result.stageNs.length).toBe(6);
  });

  it('scores browse placements and unknown users', async () => {
    const result = await engine.score(encodeAdRequest({ placement: Placement.Homepage, userId: 'nobody-knows-me' }), 1000);
    expect(result.adIndex.length).toBe(50);
    expect(result.ctrLogit.every(Number.isFinite)).toBe(true);
  });

  it('batches concurrent requests and settles each with its own result', async () => {
    const queries = ['dog food', 'usb cable', 'yoga mat', 'coffee beans'];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => engine.score(encodeAdRequest({ query: queries[i % 4] }), 1000)));
    expect(Math.max(...results.map((r) => r.batchSize))).toBeGreaterThan(1);
    // Same query, same answer, whatever batch it landed in.
    expect(Array.from(results[4]!.adIndex)).toEqual(Array.from(results[0]!.adIndex));
    expect(Array.from(results[4]!.ctrLogit)).toEqual(Array.from(results[0]!.ctrLogit));
    expect(Array.from(results[1]!.adIndex)).not.toEqual(Array.from(results[0]!.adIndex));
  });

  it('answers a request whose deadline has passed from the lightweight score, flagged degraded', async () => {
    const result = await engine.score(encodeAdRequest({ query: 'tv' }), 0);
    expect(result.degraded).toBe(true);
    expect(result.adIndex.length).toBe(50);
    expect(result.ctrLogit.every(Number.isNaN)).toBe(true);
  });

  it('never returns an ineligible ad, and ineligible ads do not crowd out eligible ones', async () => {
    const request = encodeAdRequest({ query: 'running shoes' });
    const before = await engine.score(request, 1000);
    const excluded = Uint32Array.from(before.adIndex.subarray(0, 25));
    engine.setEligibility(excluded, new Uint8Array(excluded.length));
    const after = await engine.score(request, 1000);
    expect(after.adIndex.length).toBe(50);
    expect(after.adIndex.some((ad) => excluded.includes(ad))).toBe(false);
    engine.setEligibility(excluded, new Uint8Array(excluded.length).fill(1));
    expect(Array.from((await engine.score(request, 1000)).adIndex)).toEqual(Array.from(before.adIndex));
  });

  it('applies Boolean targeting inside retrieval, without crowding out eligible ads', async () => {
    // Half the catalog targets Japan only; a US request must never see those ads and still get a full list.
    const japanOnly = Array.from({ length: Math.floor(catalog.size / 2) }, (_, i) => ({ ad: i * 2, rules: [[{ type: 'geo' as const, value: 'JP' }]] }));
    const targeted = await addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), settings), targeting: japanOnly });
    try {
      const us = await targeted.score(encodeAdRequest({ query: 'running shoes', country: 'US' }), 1000);
      expect(us.adIndex.length).toBe(50);
      expect(us.adIndex.every((ad) => ad % 2 === 1)).toBe(true);
      const japan = await targeted.score(encodeAdRequest({ query: 'running shoes', country: 'JP' }), 1000);
      expect(japan.adIndex.some((ad) => ad % 2 === 0)).toBe(true);
    } finally {
      targeted.close();
    }
  });

  it('scores a request that may not be personalised as the same request without a user', async () => {
    const context = { query: 'running shoes', country: 'US', language: 'en', timestampMs: 1_764_590_400_000n };
    const knownUser = encodeAdRequest({ ...context, userId: model.userIds[0], yob: 1985, gender: Gender.Female });
    const anonymous = await engine.score(encodeAdRequest(context), 1000);
    const notPersonalised = await engine.score(knownUser, 1000, undefined, false);
    expect(Array.from(notPersonalised.adIndex)).toEqual(Array.from(anonymous.adIndex));
    expect(Array.from(notPersonalised.ctrLogit)).toEqual(Array.from(anonymous.ctrLogit));
    expect(Array.from(notPersonalised.cvrLogit)).toEqual(Array.from(anonymous.cvrLogit));
    const personalised = await engine.score(knownUser, 1000, undefined, true);
    expect(Array.from(personalised.ctrLogit)).not.toEqual(Array.from(anonymous.ctrLogit));
    expect(() => engine.score(knownUser, 1000, undefined, 'no' as unknown as boolean)).toThrow(/personalised must be a boolean/);
  });

  it('matches no audience criterion for a request that may not be personalised', async () => {
    const runnersOnly = Array.from({ length: Math.floor(catalog.size / 2) }, (_, i) => ({
      ad: i * 2,
      rules: [[{ type: 'audience' as const, value: 'runners' }]],
    }));
    const targeted = await addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), settings), targeting: runnersOnly });
    try {
      const request = encodeAdRequest({ query: 'running shoes', userId: 'a-runner', segments: ['runners'] });
      expect((await targeted.score(request, 1000)).adIndex.some((ad) => ad % 2 === 0)).toBe(true);
      const notPersonalised = await targeted.score(request, 1000, undefined, false);
      expect(notPersonalised.adIndex.length).toBe(50);
      expect(notPersonalised.adIndex.every((ad) => ad % 2 === 1)).toBe(true);
    } finally {
      targeted.close();
    }
  });

  it('matches placement and device criteria, spelled as the configuration spells them, against what requests carry', async () => {
    // Half the catalog targets product pages on tablets only, spelled in the catalog's one spelling (case aside).
    const rules = [
      [
        { type: 'placement' as const, value: 'Product_Page' },
        { type: 'device' as const, value: 'tablet' },
      ],
    ];
    const productPagesOnly = Array.from({ length: Math.floor(catalog.size / 2) }, (_, i) => ({ ad: i * 2, rules }));
    const targeted = await addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), settings), targeting: productPagesOnly });
    try {
      const request = (placement: Placement, deviceType: DeviceType) => encodeAdRequest({ placement, deviceType, productId: 'p-1', categoryId: 'shoes' });
      const productPage = await targeted.score(request(Placement.ProductPage, DeviceType.Tablet), 1000);
      expect(productPage.adIndex.some((ad) => ad % 2 === 0)).toBe(true);
      for (const [placement, deviceType] of [
        [Placement.Category, DeviceType.Tablet],
        [Placement.ProductPage, DeviceType.Mobile],
      ] as const) {
        const elsewhere = await targeted.score(request(placement, deviceType), 1000);
        expect(elsewhere.adIndex.length).toBe(50);
        expect(elsewhere.adIndex.every((ad) => ad % 2 === 1)).toBe(true);
      }
    } finally {
      targeted.close();
    }
  });

  it('merges ads whose keywords a search query matches, when the ANN search misses them and they pass', async () => {
    const narrow = { ...settings, annCandidates: 20, scoreCandidates: 20 };
    const query = 'quantum zebra';
    const untargeted = await engine.score(encodeAdRequest({ query }), 1000);
    // An ad outside the ANN's top 20 for this query, targeted at the exact keyword and given a high
    // prior so that it survives the lightweight cut once it is a candidate.
    const keywordAd = Array.from({ length: catalog.size }, (_, ad) => ad).find((ad) => !untargeted.adIndex.includes(ad))!;
    const targeting = [{ ad: keywordAd, rules: [[{ type: 'exact' as const, value: 'Quantum Zebra' }]] }];
    const merged = await addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), narrow), targeting });
    try {
      merged.setPriors(Uint32Array.of(keywordAd), Float32Array.of(10));
      expect(Array.from((await merged.score(encodeAdRequest({ query }), 1000)).adIndex)).toContain(keywordAd);
      expect(Array.from((await merged.score(encodeAdRequest({ query: 'zebra' }), 1000)).adIndex)).not.toContain(keywordAd);
      // A keyword match passes the request's exclusions like any other candidate.
      expect(Array.from((await merged.score(encodeAdRequest({ query, blockedProducts: [catalog.productId.at(keywordAd)!] }), 1000)).adIndex)).not.toContain(
        keywordAd,
      );
      const campaign = campaignCodes(catalog).get(catalog.campaignId[keywordAd]!)!;
      expect(Array.from((await merged.score(encodeAdRequest({ query }), 1000, Uint32Array.of(campaign))).adIndex)).not.toContain(keywordAd);
      merged.setEligibility(Uint32Array.of(keywordAd), Uint8Array.of(0));
      expect(Array.from((await merged.score(encodeAdRequest({ query }), 1000)).adIndex)).not.toContain(keywordAd);
    } finally {
      merged.close();
    }
    const withoutMerge = await addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), narrow), targeting, keywordCandidates: 0 });
    try {
      withoutMerge.setPriors(Uint32Array.of(keywordAd), Float32Array.of(10));
      expect(Array.from((await withoutMerge.score(encodeAdRequest({ query }), 1000)).adIndex)).not.toContain(keywordAd);
    } finally {
      withoutMerge.close();
    }
  });

  it('scores the same with the precomputed first fusion layer as with the TorchScript model', async () => {
    const reference = await openEngine(model, modelCatalog, adHistory(model), { ...settings, fusion: 'model' });
    try {
      for (const spec of [
        { query: 'running shoes', userId: model.userIds[3] },
        { placement: Placement.Cart, productId: 'p00000007' },
      ]) {
        const fast = await engine.score(encodeAdRequest(spec), 1000);
        const slow = await reference.score(encodeAdRequest(spec), 1000);
        expect(Array.from(fast.adIndex)).toEqual(Array.from(slow.adIndex));
        for (let i = 0; i < fast.adIndex.length; i++) {
          expect(Math.abs(fast.ctrLogit[i]! - slow.ctrLogit[i]!)).toBeLessThan(1e-4);
          expect(Math.abs(fast.cvrLogit[i]! - slow.cvrLogit[i]!)).toBeLessThan(1e-4);
        }
      }
    } finally {
      reference.close();
    }
  });

  it('takes new lightweight-score priors for the next request, and refuses bad ones', async () => {
    const request = encodeAdRequest({ query: 'desk lamp', userId: model.userIds[2] });
    const before = await engine.score(request, 1000);
    const last = before.adIndex[before.adIndex.length - 1]!;
    engine.setPriors(Uint32Array.of(last), Float32Array.of(100));
    const after = await engine.score(request, 1000);
    expect(after.adIndex[0]).toBe(last);
    expect(() => engine.setPriors(Uint32Array.of(1, 2), Float32Array.of(1))).toThrow(/differ in length/);
    expect(() => engine.setPriors(Uint32Array.of(catalog.size), Float32Array.of(1))).toThrow(/out of range/);
    expect(() => engine.setPriors(Uint32Array.of(0), Float32Array.of(Number.NaN))).toThrow(/finite/);
    engine.setPriors(Uint32Array.of(last), Float32Array.of(adPrior(last, adHistory(model), catalog, settings.light)));
  });

  it('refuses malformed bytes synchronously with E_BAD_REQUEST', () => {
    expect(() => engine.score(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), 10)).toThrow(expect.objectContaining({ code: 'E_BAD_REQUEST' }));
    expect(() => engine.setEligibility(Uint32Array.of(10_000_000), Uint8Array.of(0))).toThrow(expect.objectContaining({ code: 'E_INVALID_ARG' }));
  });

  it('reports its state', () => {
    const stats = engine.stats();
    expect(stats.ads).toBe(catalog.size);
    expect(stats.index).toBe('Flat');
    expect(stats.requests).toBeGreaterThan(40);
    // Repeated queries and unknown users with the same demographics were served from the caches.
    expect(stats.contextCacheHits).toBeGreaterThan(10);
    expect(stats.userCacheHits).toBeGreaterThan(10);
  });
});

describe('FAISS index cache', () => {
  it('builds once, then loads the same index from the cache; a damaged cache file is rebuilt', async () => {
    const cacheDir = mkdtempSync(path.join(tmpdir(), 'adserve-index-cache-'));
    const cached: EngineSettings = { ...settings, index: { kind: 'ivf', nlist: 8, nprobe: 3 }, indexCacheDir: cacheDir };
    const requests = ['running shoes', 'coffee beans', ''].map((query) => encodeAdRequest({ query, userId: model.userIds[1] }));
    const retrieve = async (): Promise<{ description: string; results: number[][] }> => {
      const opened = await openEngine(model, modelCatalog, adHistory(model), cached);
      try {
        const results = [];
        for (const request of requests) results.push(Array.from((await opened.score(request, 1000)).adIndex));
        return { description: opened.stats().index, results };
      } finally {
        opened.close();
      }
    };
    const scan = `scan=sq8(${addon.buildInfo().scanKernels[0]})+rerank`;
    const built = await retrieve();
    expect(built.description).toBe(`IVF8,Flat,nprobe=3,${scan}`);
    const [file] = readdirSync(cacheDir);
    expect(file).toMatch(/^ivf-[0-9a-f]{24}\.faiss$/);
    const loaded = await retrieve();
    expect(loaded.description).toBe(`IVF8,Flat,nprobe=3,${scan} (from cache)`);
    expect(loaded.results).toEqual(built.results);
    writeFileSync(path.join(cacheDir, file!), 'not an index');
    const rebuilt = await retrieve();
    expect(rebuilt.description).toBe(`IVF8,Flat,nprobe=3,${scan}`);
    expect(rebuilt.results).toEqual(built.results);
    // A different build option is a different file.
    await openEngine(model, modelCatalog, adHistory(model), { ...cached, index: { kind: 'ivf', nlist: 4 } }).then((other) => other.close());
    expect(readdirSync(cacheDir).length).toBe(2);
  });
});

describe('IVF retrieval against exact search', () => {
  it('recalls at least 0.95 of the exact candidates with either list scan, and returns only eligible, targeted-in ads', async () => {
    // 40% of the ads target one country, 20% are ineligible; k = 30 of 400 ads makes the automatic
    // nprobe scan 12 of the 20 lists, so the IVF search is a real approximation here.
    let seed = 7;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const countries = ['US', 'JP', 'DE'];
    const targeting = Array.from({ length: catalog.size }, (_, ad) => ad)
      .filter(() => random() < 0.4)
      .map((ad) => ({ ad, rules: [[{ type: 'geo' as const, value: countries[ad % 3]! }]] }));
    const ineligible = Uint32Array.from(Array.from({ length: catalog.size }, (_, ad) => ad).filter(() => random() < 0.2));
    const matcher = new addon.TargetingIndex(catalog.size, targeting);
    const narrow: EngineSettings = { ...settings, annCandidates: 30, scoreCandidates: 30, batching: { ...settings.batching, queueCapacity: 256 } };
    const words = ['running', 'shoes', 'dog', 'food', 'usb', 'cable', 'yoga', 'mat', 'coffee', 'beans', 'gift'];
    const requests = Array.from({ length: 100 }, () => ({
      query: Array.from({ length: 1 + Math.floor(random() * 3) }, () => words[Math.floor(random() * words.length)]).join(' '),
      country: countries[Math.floor(random() * 3)]!,
      userId: random() < 0.5 ? model.userIds[Math.floor(random() * model.userIds.length)] : 'someone-new',
    }));
    const retrieve = async (index: EngineSettings['index']): Promise<Int32Array[]> => {
      const opened = await addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), { ...narrow, index }), targeting });
      try {
        opened.setEligibility(ineligible, new Uint8Array(ineligible.length));
        return await Promise.all(requests.map((request) => opened.score(encodeAdRequest(request), 5000).then((r) => r.adIndex)));
      } finally {
        opened.close();
      }
    };
    const exact = await retrieve({ kind: 'flat' });
    for (const ivfScan of ['float', 'sq8'] as const) {
      const approximate = await retrieve({ kind: 'ivf', ivfScan });
      let found = 0;
      let total = 0;
      approximate.forEach((ads, i) => {
        const allowed = new Set(matcher.match({ geo: requests[i]!.country }));
        for (const ad of ads) {
          expect(allowed.has(ad) && !ineligible.includes(ad), `ad ${ad} for ${JSON.stringify(requests[i])}`).toBe(true);
        }
        const truth = new Set(exact[i]);
        total += truth.size;
        found += Array.from(ads).filter((ad) => truth.has(ad)).length;
        expect(ads.length).toBe(30);
      });
      expect(found / total, ivfScan).toBeGreaterThanOrEqual(0.95);
    }
  });

  it.each([0.2, 0.9])('probing every list, returns exactly the best admitted ads of an exact search with %s of the ads ineligible', async (share) => {
    // The filter asks about the best candidates in rounds and falls back to every candidate when the
    // best few pass too seldom; with every list probed, the float scan must match the flat index ad for ad.
    let seed = 11;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const ineligible = Uint32Array.from(Array.from({ length: catalog.size }, (_, ad) => ad).filter(() => random() < share));
    const narrow: EngineSettings = { ...settings, annCandidates: 30, scoreCandidates: 30, batching: { ...settings.batching, queueCapacity: 256 } };
    const requests = Array.from({ length: 40 }, (_, i) => ({ query: ['running shoes', 'dog food', 'usb cable', 'yoga mat'][i % 4], userId: `u-${i}` }));
    const retrieve = async (index: EngineSettings['index']): Promise<number[][]> => {
      const opened = await addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), { ...narrow, index }) });
      try {
        opened.setEligibility(ineligible, new Uint8Array(ineligible.length));
        return await Promise.all(
          requests.map((request) => opened.score(encodeAdRequest(request), 5000).then((r) => Array.from(r.adIndex).sort((a, b) => a - b))),
        );
      } finally {
        opened.close();
      }
    };
    const exact = await retrieve({ kind: 'flat' });
    const probingAll = await retrieve({ kind: 'ivf', ivfScan: 'float', nlist: 20, nprobe: 20 });
    expect(probingAll).toEqual(exact);
    for (const ads of probingAll) expect(ads.some((ad) => ineligible.includes(ad))).toBe(false);
  });
});
