import { describe, expect, it } from 'vitest';

import { defaultQualityWeights, qualityScores } from '../../src/auction/quality';
import { BidType } from '../../src/protocol/schema';
import { seededRandom } from '../helpers/random';

/** The definition: each component over its mean, raised to its weight, multiplied, clamped to [0.5, 1.5]. */
function reference(bidType: Uint8Array, pCtr: Float64Array, pCvr: Float64Array, relevance: Float32Array, landing: Float64Array): number[] {
  const { alpha, beta, gamma, delta } = defaultQualityWeights;
  const mean = (values: ArrayLike<number>): number => Array.from(values).reduce((sum, v) => sum + v, 0) / values.length;
  return Array.from(bidType, (type, i) => {
    let qs = Math.pow(relevance[i]! / mean(relevance), beta) * Math.pow(landing[i]! / mean(landing), gamma);
    if (type === BidType.Cpc) qs *= Math.pow(pCvr[i]! / mean(pCvr), alpha);
    else if (type === BidType.Cpm) qs *= Math.pow(pCtr[i]! / mean(pCtr), delta);
    return Math.min(1.5, Math.max(0.5, qs));
  });
}

describe('quality score', () => {
  it('equals the power-law definition within 1e-9 relative on random candidates of every bid type', () => {
    const random = seededRandom(3);
    let unclamped = 0;
    for (let round = 0; round < 200; round++) {
      const n = 1 + Math.floor(random() * 300);
      const bidType = Uint8Array.from({ length: n }, () => Math.floor(random() * 3));
      const pCtr = Float64Array.from({ length: n }, () => 0.001 + random() * 0.1);
      const pCvr = Float64Array.from({ length: n }, () => (random() < 0.05 ? 0 : 0.01 + random() * 0.2));
      const relevance = Float32Array.from({ length: n }, () => 1e-6 + random());
      const landing = Float64Array.from({ length: n }, () => 0.2 + random() * 0.8);
      const out = new Float64Array(n);
      qualityScores(n, bidType, pCtr, pCvr, relevance, landing, landing.map(Math.log), defaultQualityWeights, out);
      const expected = reference(bidType, pCtr, pCvr, relevance, landing);
      for (let i = 0; i < n; i++) {
        expect(Math.abs(out[i]! - expected[i]!)).toBeLessThanOrEqual(1e-9 * expected[i]!);
        if (expected[i]! > 0.5 && expected[i]! < 1.5) unclamped++;
      }
    }
    expect(unclamped).toBeGreaterThan(10_000);
  });

  it('docs/auction.md worked example: two CPC candidates score 0.7143 and 1.0274; a component far under its mean clamps to 0.5', () => {
    const out = new Float64Array(2);
    const cpc = Uint8Array.of(BidType.Cpc, BidType.Cpc);
    // pCVR 0.02 and 0.08 (mean 0.05), relevance 0.9 and 0.3 (mean 0.6), equal landing quality.
    qualityScores(
      2,
      cpc,
      Float64Array.of(0.04, 0.04),
      Float64Array.of(0.02, 0.08),
      Float32Array.of(0.9, 0.3),
      Float64Array.of(0.8, 0.8),
      Float64Array.of(Math.log(0.8), Math.log(0.8)),
      defaultQualityWeights,
      out,
    );
    expect(out[0]).toBeCloseTo(0.7143, 4);
    expect(out[1]).toBeCloseTo(1.0274, 4);
    qualityScores(
      2,
      cpc,
      Float64Array.of(0.04, 0.04),
      Float64Array.of(0.001, 0.099),
      Float32Array.of(0.5, 0.5),
      Float64Array.of(0.8, 0.8),
      Float64Array.of(Math.log(0.8), Math.log(0.8)),
      defaultQualityWeights,
      out,
    );
    // sqrt(0.02) = 0.14 and sqrt(1.98) = 1.41: the first clamps, the second stays.
    expect(Array.from(out, (qs) => Math.round(qs * 1e4) / 1e4)).toEqual([0.5, 1.4071]);
  });
});
