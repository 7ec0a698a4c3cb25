import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { defaults, loadConfig } from '../../src/config';
import { addon, type NativeEngine, type ScoreResult } from '../../src/engine/addon';
import { adHistory, type EngineSettings, openEngine } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { engineSettings, lightWeights } from '../../src/engine/serving';
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
const modelCatalog = catalogFromFile(model);
const { catalog } = modelCatalog;
let fused: NativeEngine;
let reference: NativeEngine;
// An engine per reduced precision, and engines of it pinned to each other dense-kernel variant
// this machine runs, by name.
const reducedPrecisions = ['bf16', 'int16'] as const;
type ReducedPrecision = (typeof reducedPrecisions)[number];
// The variants that sum in one order and so give the same bits (AMX, bf16's best where present,
// rounds inside its tile instruction in its own way and is held to a bound instead).
const sameBitsVariants: Record<ReducedPrecision, string[]> = { bf16: ['avx512bf16', 'avx2', 'portable'], int16: ['avx2', 'portable'] };
const reduced = new Map<ReducedPrecision, NativeEngine>();
const pinned = new Map<ReducedPrecision, Map<string, NativeEngine>>();

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
  fused = await openEngine(model, modelCatalog, adHistory(model), settings);
  reference = await openEngine(model, modelCatalog, adHistory(model), { ...settings, fusion: 'model' });
  for (const precision of reducedPrecisions) {
    const selected = await openEngine(model, modelCatalog, adHistory(model), { ...settings, fusionPrecision: precision });
    reduced.set(precision, selected);
    const others = new Map<string, NativeEngine>();
    pinned.set(precision, others);
    for (const kernel of sameBitsVariants[precision]) {
      if (kernel === selected.stats().fusionKernel) continue;
      try {
        others.set(kernel, await openEngine(model, modelCatalog, adHistory(model), { ...settings, fusionPrecision: precision, fusionKernel: kernel }));
      } catch (error) {
        // Only an instruction set this CPU lacks may be missing; the portable variant never is.
        expect(kernel).not.toBe('portable');
        expect(String(error)).toMatch(/not available on this machine/);
      }
    }
  }
});

afterAll(() => {
  fused.close();
  reference.close();
  for (const engine of reduced.values()) engine.close();
  for (const engines of pinned.values()) for (const engine of engines.values()) engine.close();
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

describe('the towers behind fusion', () => {
  it('give a request the bits it got in its first batch when it comes again, its context and user from the caches', async () => {
    // Requests of one batch that share a context or an unknown user's fields: each key is embedded
    // once, and the cache keeps what the batch used.
    const engine = await openEngine(model, modelCatalog, adHistory(model), settings);
    try {
      const bodies = [...requests, ...requests].map((spec) => encodeAdRequest(spec));
      const first = await Promise.all(bodies.map((body) => engine.score(body, 5000)));
      const again = await Promise.all(bodies.map((body) => engine.score(body, 5000)));
      expect(Math.max(...first.map((result) => result.batchSize))).toBe(32);
      expect(again.map((result) => bits(result.ctrLogit))).toEqual(first.map((result) => bits(result.ctrLogit)));
      expect(again.map((result) => Array.from(result.light))).toEqual(first.map((result) => Array.from(result.light)));
    } finally {
      engine.close();
    }
  });
});

describe('fusionPrecision', () => {
  const bodies = requests.map((spec) => encodeAdRequest(spec));
  /** The largest |difference| of the two engines' logits on every candidate of `bodies`, and how many differ; their candidates must agree. */
  async function logitDifferences(engine: NativeEngine, reference: NativeEngine): Promise<{ worst: number; differing: number }> {
    const [mine, theirs] = await Promise.all([
      Promise.all(bodies.map((body) => engine.score(body, 5000))),
      Promise.all(bodies.map((body) => reference.score(body, 5000))),
    ]);
    let worst = 0;
    let differing = 0;
    for (let i = 0; i < bodies.length; i++) {
      expect(Array.from(mine[i]!.adIndex)).toEqual(Array.from(theirs[i]!.adIndex));
      for (const logits of ['ctrLogit', 'cvrLogit'] as const) {
        for (let j = 0; j < theirs[i]!.adIndex.length; j++) {
          const difference = Math.abs(mine[i]![logits][j]! - theirs[i]![logits][j]!);
          worst = Math.max(worst, difference);
          if (difference > 0) differing++;
        }
      }
    }
    return { worst, differing };
  }
  const bf16 = (): NativeEngine => reduced.get('bf16')!;

  it("is honoured: the hidden layers run the precision's kernel, fp32 stays the engine default", () => {
    expect(['amx', 'avx512bf16', 'avx2', 'portable']).toContain(bf16().stats().fusionKernel);
    expect(bf16().stats().fusionPrecision).toBe('bf16');
    expect(['avx512vnni', 'avx2', 'portable']).toContain(reduced.get('int16')!.stats().fusionKernel);
    expect(reduced.get('int16')!.stats().fusionPrecision).toBe('int16');
    expect(['avx512', 'avx2', 'portable']).toContain(fused.stats().fusionKernel);
    expect(fused.stats().fusionPrecision).toBe('fp32');
    const { fusionKernels } = addon.buildInfo();
    expect([fused, bf16(), reduced.get('int16')!].map((engine) => engine.stats().fusionKernel)).toEqual([
      fusionKernels.fp32[0],
      fusionKernels.bf16[0],
      fusionKernels.int16[0],
    ]);
    for (const precision of reducedPrecisions) expect(engineSettings(loadConfig({ ADSERVE_FUSION_PRECISION: precision })).fusionPrecision).toBe(precision);
    expect(engineSettings(loadConfig({ ADSERVE_FUSION_KERNEL: 'avx2' })).fusionKernel).toBe('avx2');
    expect(engineSettings(loadConfig({})).fusionKernel).toBeUndefined();
    expect(() => loadConfig({ ADSERVE_FUSION_PRECISION: 'fp8' })).toThrow(/ADSERVE_FUSION_PRECISION/);
  });

  it("is the daemon's default as 'auto': bf16 where the CPU has AMX or AVX512_BF16, else int16 where it has AVX-512 VNNI, else fp32", async () => {
    expect(engineSettings(loadConfig({})).fusionPrecision).toBe('auto');
    const nativeBf16 = ['amx', 'avx512bf16'].includes(bf16().stats().fusionKernel);
    const precision = nativeBf16 ? 'bf16' : reduced.get('int16')!.stats().fusionKernel === 'avx512vnni' ? 'int16' : 'fp32';
    const automatic = await openEngine(model, modelCatalog, adHistory(model), { ...settings, fusionPrecision: 'auto' });
    // Fresh too and asked the same alone, so that nothing but the precision setting differs.
    const explicit = await openEngine(model, modelCatalog, adHistory(model), { ...settings, fusionPrecision: precision });
    try {
      expect(automatic.stats().fusionPrecision).toBe(precision);
      expect(automatic.stats().fusionKernel).toBe(explicit.stats().fusionKernel);
      const body = bodies[3]!;
      const [mine, expected] = await Promise.all([automatic.score(body, 5000), explicit.score(body, 5000)]);
      expect(bits(mine.ctrLogit)).toEqual(bits(expected.ctrLogit));
    } finally {
      automatic.close();
      explicit.close();
    }
  });

  it('rejects a precision or kernel variant it does not know at open', async () => {
    await expect(openEngine(model, modelCatalog, adHistory(model), { ...settings, fusionPrecision: 'fp8' as 'bf16' })).rejects.toThrow(/precision/);
    await expect(openEngine(model, modelCatalog, adHistory(model), { ...settings, fusionPrecision: 'bf16', fusionKernel: 'avx9' })).rejects.toThrow(
      /not available/,
    );
    // int16 has no plain AVX-512 variant (without VNNI it runs AVX2 code).
    await expect(openEngine(model, modelCatalog, adHistory(model), { ...settings, fusionPrecision: 'int16', fusionKernel: 'avx512' })).rejects.toThrow(
      /not available/,
    );
  });

  // A last-bit difference in a layer's sum can move its output across a bf16 rounding step at the
  // next layer's input (a relative 2^-8 on that input): a tenth of bf16's bound against fp32.
  it('stays within 0.001 of the variants that sum in one order, and differs from them, where it runs on AMX', async (context) => {
    if (bf16().stats().fusionKernel !== 'amx') context.skip();
    const { worst, differing } = await logitDifferences(bf16(), [...pinned.get('bf16')!.values()][0]!);
    expect(worst).toBeLessThanOrEqual(0.001);
    expect(differing).toBeGreaterThan(0);
  });

  // int16 quantizes each row to about 11.5 bits of its largest input, finer than bf16's 8-bit
  // mantissa on all but its smallest inputs: its bound is ten times tighter.
  const bounds: Record<ReducedPrecision, number> = { bf16: 0.01, int16: 0.001 };
  describe.each(reducedPrecisions)('%s', (precision) => {
    const engine = (): NativeEngine => reduced.get(precision)!;

    it(`stays within ${bounds[precision]} of the fp32 logits and differs from them, on every candidate of distinct requests`, async () => {
      const { worst, differing } = await logitDifferences(engine(), fused);
      expect(worst).toBeLessThanOrEqual(bounds[precision]);
      expect(differing).toBeGreaterThan(requests.length * 37);
    });

    it('gives the same bits on the portable variant (and AVX2 and AVX512_BF16 where present) as on the selected one, or on AMX the next best', async () => {
      const others = pinned.get(precision)!;
      expect(others.has('portable') || engine().stats().fusionKernel === 'portable').toBe(true);
      const amx = engine().stats().fusionKernel === 'amx';
      const reference = amx ? [...others.values()][0]! : engine();
      const selected = await Promise.all(bodies.map((body) => reference.score(body, 5000)));
      for (const [kernel, other] of others) {
        expect(other.stats().fusionKernel).toBe(kernel);
        if (other === reference) continue;
        const scored = await Promise.all(bodies.map((body) => other.score(body, 5000)));
        for (let i = 0; i < bodies.length; i++) {
          expect(Array.from(scored[i]!.adIndex)).toEqual(Array.from(selected[i]!.adIndex));
          expect(bits(scored[i]!.ctrLogit)).toEqual(bits(selected[i]!.ctrLogit));
          expect(bits(scored[i]!.cvrLogit)).toEqual(bits(selected[i]!.cvrLogit));
        }
      }
    });

    it('gives a request the same bits alone as inside a batch of 32 different requests', async () => {
      const target = bodies[4]!;
      const alone = await engine().score(target, 5000);
      expect(alone.batchSize).toBe(1);
      const batch = bodies.filter((_, i) => i !== 4).slice(0, 31);
      batch.splice(13, 0, target);
      const inBatch = (await Promise.all(batch.map((body) => engine().score(body, 5000))))[13]!;
      expect(inBatch.batchSize).toBe(32);
      expect(bits(inBatch.ctrLogit)).toEqual(bits(alone.ctrLogit));
      expect(bits(inBatch.cvrLogit)).toEqual(bits(alone.cvrLogit));
    });
  });
});
