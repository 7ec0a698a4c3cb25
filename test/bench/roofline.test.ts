// The roofline's work per request: fusion FLOPs from the layer shapes, scan bytes from the index.
import { describe, expect, it } from 'vitest';

import { engineInfo, fusionFlopsPerCandidate, scanBytesPerQuery } from '../../bench/roofline';
import { loadConfig } from '../../src/config';

// The demo model's fusion: [E_user, E_ctx, E_ad, 3 dots, 5 pair features] -> 256 -> 128 -> 64, two heads.
const demo = {
  layers: [
    [256, 392],
    [128, 256],
    [64, 128],
  ] as Array<[number, number]>,
  heads: [2, 64] as [number, number],
};

describe('roofline work per request', () => {
  it('counts the multiply-adds left per candidate after the first-layer precompute, and all of them for the TorchScript score', () => {
    // 2 dots of 128 + (3 + 5) x 256 + 256 x 128 + 128 x 64 + 64 x 2 = 43 392 multiply-adds.
    expect(fusionFlopsPerCandidate(demo, 'precomputed', 128)).toBe(2 * 43_392);
    // 3 dots of 128 + 392 x 256 + the same later layers.
    expect(fusionFlopsPerCandidate(demo, 'model', 128)).toBe(2 * (384 + 392 * 256 + 256 * 128 + 128 * 64 + 64 * 2));
  });

  it('estimates the codes an IVF query reads from nprobe and the mean list length', () => {
    const config = loadConfig({});
    const info = engineInfo(
      '{"level":"info","msg":"loading"}\n{"time":"t","level":"info","msg":"engine ready","model":"m","ads":20000,"index":"IVF141,Flat,nprobe=auto,scan=sq8+rerank (from cache)","fusionPrecision":"int16","fusionKernel":"avx512vnni","seconds":1.9}\n',
    );
    expect(info).toEqual({ ads: 20000, index: 'IVF141,Flat,nprobe=auto,scan=sq8+rerank (from cache)', fusionPrecision: 'int16', fusionKernel: 'avx512vnni' });
    // 1000 candidates: nprobe = max(ceil(8 x 1000 x 141 / 20000), ceil(141 / 24)) = 57 lists of 20000 / 141 ads, 1 byte per dimension.
    expect(config.annCandidates).toBe(1000);
    expect(scanBytesPerQuery(info!, config, 128)).toBeCloseTo((57 * 20000 * 128) / 141, 6);
    // At 1.05M ads the floor of 1/24 of the lists wins: 43 of 1025 lists.
    expect(scanBytesPerQuery({ ads: 1_050_000, index: 'IVF1025,Flat,nprobe=auto,scan=sq8+rerank' }, config, 128)).toBeCloseTo((43 * 1_050_000 * 128) / 1025, 6);
    expect(scanBytesPerQuery({ ads: 20000, index: 'IVF141,Flat,nprobe=16' }, config, 128)).toBeCloseTo((16 * 20000 * 128 * 4) / 141, 6);
    expect(scanBytesPerQuery({ ads: 20000, index: 'Flat' }, config, 128)).toBe(20000 * 128 * 4);
    expect(scanBytesPerQuery({ ads: 20000, index: 'HNSW16,efSearch=max(64,k)' }, config, 128)).toBeUndefined();
  });
});
