import { describe, expect, it } from 'vitest';

import { addon, isNativeError } from '../../src/engine/addon';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { seededRandom } from '../helpers/random';

function randomVectors(count: number, dim: number, seed: number): Float32Array {
  const values = new Float32Array(count * dim);
  const random = seededRandom(seed);
  for (let i = 0; i < values.length; i++) values[i] = random() - 0.5;
  return values;
}

function bruteForceTopK(vectors: Float32Array, dim: number, query: Float32Array, k: number): number[] {
  const scored: Array<[number, number]> = [];
  for (let row = 0; row < vectors.length / dim; row++) {
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += vectors[row * dim + d]! * query[d]!;
    scored.push([dot, row]);
  }
  scored.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  return scored.slice(0, k).map(([, row]) => row);
}

function expectCode(action: () => unknown, code: string, message: RegExp): void {
  try {
    action();
  } catch (error) {
    expect(isNativeError(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    expect((error as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected a native error');
}

describe('buildInfo', () => {
  it('reports the libraries the addon runs on', () => {
    const info = addon.buildInfo();
    expect(info.torch).toMatch(/^1\.13\./);
    expect(info.faiss).toMatch(/^1\.7\./);
    expect(info.flatbuffers).toMatch(/^2\.0\./);
    expect(info.compiler).toMatch(/gcc|clang/);
    expect(info.cuda).toBe(false);
    expect(info.workerThreads).toBeGreaterThanOrEqual(1);
    for (const precision of ['fp32', 'bf16', 'int16'] as const) expect(info.fusionKernels[precision].at(-1)).toBe('portable');
  });
});

describe('VectorIndex', () => {
  const dim = 16;
  const vectors = randomVectors(2000, dim, 7);
  const index = new addon.VectorIndex(dim, vectors);

  it('finds the same top-k as a brute-force scan, as typed arrays', async () => {
    const queries = randomVectors(5, dim, 99);
    const hits = await index.search(queries, 10);
    expect(hits.scores).toBeInstanceOf(Float32Array);
    expect(hits.labels).toBeInstanceOf(Int32Array);
    expect(hits.labels.length).toBe(50);
    for (let q = 0; q < 5; q++) {
      const expected = bruteForceTopK(vectors, dim, queries.subarray(q * dim, (q + 1) * dim), 10);
      expect(Array.from(hits.labels.subarray(q * 10, (q + 1) * 10))).toEqual(expected);
      for (let i = 1; i < 10; i++) expect(hits.scores[q * 10 + i]!).toBeLessThanOrEqual(hits.scores[q * 10 + i - 1]!);
    }
  });

  it('marks missing hits with -1 when k exceeds the index size', async () => {
    const small = new addon.VectorIndex(2, new Float32Array([1, 0, 0, 1]));
    const hits = await small.search(new Float32Array([1, 0]), 4);
    expect(Array.from(hits.labels)).toEqual([0, 1, -1, -1]);
  });

  it('answers many concurrent searches correctly', async () => {
    const queries = Array.from({ length: 1000 }, (_, i) => vectors.slice((i % 2000) * dim, ((i % 2000) + 1) * dim));
    const results = await Promise.all(queries.map((query) => index.search(query, 3)));
    results.forEach((hits, i) => {
      expect(Array.from(hits.labels)).toEqual(bruteForceTopK(vectors, dim, queries[i]!, 3));
    });
  });

  it('keeps results valid after the caller reuses its query buffer', async () => {
    const query = vectors.slice(0, dim);
    const pending = index.search(query, 1);
    query.fill(0);
    expect((await pending).labels[0]).toBe(bruteForceTopK(vectors, dim, vectors.subarray(0, dim), 1)[0]);
  });

  it('throws JS errors with stable codes for invalid arguments', () => {
    expectCode(() => new addon.VectorIndex(0, new Float32Array(4)), 'E_INVALID_ARG', /dim must be an integer/);
    expectCode(() => new addon.VectorIndex(3, new Float32Array(4)), 'E_INVALID_ARG', /not a multiple of dim 3/);
    expectCode(() => new addon.VectorIndex(2, new Float32Array([1, Number.NaN])), 'E_INVALID_ARG', /non-finite/);
    expectCode(() => new addon.VectorIndex(2, new Float64Array(4) as unknown as Float32Array), 'E_INVALID_ARG', /Float32Array/);
    expectCode(() => index.search(new Float32Array(dim + 1), 1), 'E_INVALID_ARG', /multiple of dim 16/);
    expectCode(() => index.search(new Float32Array(dim), 0), 'E_INVALID_ARG', /k must be an integer/);
    expectCode(() => index.search(new Float32Array(dim), 1.5), 'E_INVALID_ARG', /k must be an integer/);
    expectCode(() => index.search(new Float32Array(dim), 5000), 'E_INVALID_ARG', /k must be an integer in 1..4096/);
    expectCode(() => addon.configure({ workerThreads: 2 }), 'E_INVALID_ARG', /before the first asynchronous call/);
  });

  it('rejects the promise when the engine thread fails', async () => {
    const query = new Float32Array(dim);
    query[3] = Number.POSITIVE_INFINITY;
    await expect(index.search(query, 1)).rejects.toMatchObject({
      code: 'E_INVALID_ARG',
      message: expect.stringMatching(/queries contain a non-finite value at 3/),
    });
  });
});

describe('request verification', () => {
  it('accepts a well-formed AdRequest and refuses anything else with E_BAD_REQUEST', () => {
    const bytes = encodeAdRequest({ query: 'tv' });
    expect(() => addon.verifyAdRequest(bytes)).not.toThrow();
    expectCode(() => addon.verifyEvent(bytes), 'E_BAD_REQUEST', /not an Event/);
    expectCode(() => addon.verifyAdRequest(bytes.subarray(0, 12)), 'E_BAD_REQUEST', /verification/);
    expectCode(() => addon.verifyAdRequest(new Uint8Array(70_000)), 'E_BAD_REQUEST', /larger than 65536/);
    expectCode(() => addon.verifyAdRequest('ADRQ' as unknown as Uint8Array), 'E_INVALID_ARG', /Uint8Array/);
  });
});
