import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { defaults } from '../../src/config';
import { catalogFromJson } from '../../src/catalog/catalog';
import type { NativeEngine, ScoreResult } from '../../src/engine/addon';
import { adHistory, type EngineSettings, openEngine } from '../../src/engine/engine';
import { readModelDir } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { type AdRequestSpec, encodeAdRequest } from '../../src/protocol/encode_request';
import { DeviceType, Placement } from '../../src/protocol/schema';
import { tinyModelDir } from '../setup/tiny_model';

// 37 candidates: requests start mid-tile and mid-block of the fused pass, so a request's rows share
// kernel tiles with its neighbours' rows.
const settings: EngineSettings = {
  index: { kind: 'flat' },
  fusion: 'precomputed',
  annCandidates: 200,
  scoreCandidates: 37,
  batching: { maxBatch: 32, maxDelayUs: 50_000, queueCapacity: 256 },
  light: lightWeights(defaults),
};

const model = readModelDir(tinyModelDir);
const catalog = catalogFromJson(model.catalog);
let fused: NativeEngine;
let reference: NativeEngine;

const words = ['running shoes', 'dog food', 'usb cable', 'yoga mat', 'coffee beans', 'desk lamp', 'gift', 'tv', 'garden hose', 'lego'];
const placements = [Placement.Search, Placement.ProductPage, Placement.Category, Placement.Homepage, Placement.Cart];
// Distinct requests: every placement, known and unknown users, devices and hours.
const requests: AdRequestSpec[] = Array.from({ length: 40 }, (_, i) => ({
  placement: placements[i % placements.length],
  query: i % placements.length === 0 ? words[i % words.length] : undefined,
  productId: `p${String(i * 7).padStart(8, '0')}`,
  categoryId: catalog.category[(i * 11) % catalog.size],
  userId: i % 3 === 2 ? `new-user-${i}` : model.userIds[i % model.userIds.length],
  deviceType: [DeviceType.Desktop, DeviceType.Mobile, DeviceType.Tablet][i % 3],
  timestampMs: 1_790_000_000_000n + BigInt(i) * 3_600_000n,
}));

const bits = (values: Float32Array): number[] => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));

beforeAll(async () => {
  fused = await openEngine(model, catalog, adHistory(model), settings);
  reference = await openEngine(model, catalog, adHistory(model), { ...settings, fusion: 'model' });
});

afterAll(() => {
  fused.close();
  reference.close();
});

describe('precomputed fusion over the whole batch', () => {
  it('matches the TorchScript score method on every candidate of distinct requests', async () => {
    const bodies = requests.map((spec) => encodeAdRequest(spec));
    const fast = await Promise.all(bodies.map((body) => fused.score(body, 5000)));
    expect(Math.max(...fast.map((r) => r.batchSize))).toBeGreaterThan(8);
    let compared = 0;
    for (let i = 0; i < bodies.length; i++) {
      const slow = await reference.score(bodies[i]!, 5000);
      expect(Array.from(fast[i]!.adIndex)).toEqual(Array.from(slow.adIndex));
      for (let j = 0; j < slow.adIndex.length; j++) {
        expect(Math.abs(fast[i]!.ctrLogit[j]! - slow.ctrLogit[j]!)).toBeLessThanOrEqual(1e-4);
        expect(Math.abs(fast[i]!.cvrLogit[j]! - slow.cvrLogit[j]!)).toBeLessThanOrEqual(1e-4);
        compared++;
      }
    }
    expect(compared).toBe(requests.length * 37);
  });

  it('gives a request the same bits alone as at any position of a batch of 32 different requests', async () => {
    const target = encodeAdRequest(requests[4]!);
    const alone = await fused.score(target, 5000);
    expect(alone.batchSize).toBe(1);
    const others = requests.filter((_, i) => i !== 4).map((spec) => encodeAdRequest(spec));
    for (const position of [0, 13, 31]) {
      const batch = others.slice(0, 31);
      batch.splice(position, 0, target);
      const results: ScoreResult[] = await Promise.all(batch.map((body) => fused.score(body, 5000)));
      const inBatch = results[position]!;
      expect(inBatch.batchSize).toBe(32);
      expect(Array.from(inBatch.adIndex)).toEqual(Array.from(alone.adIndex));
      expect(bits(inBatch.ctrLogit)).toEqual(bits(alone.ctrLogit));
      expect(bits(inBatch.cvrLogit)).toEqual(bits(alone.cvrLogit));
    }
  });
});
