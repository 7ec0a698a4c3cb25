// Quality score (AUCTION.md): multiplicative and non-compensatory, each component divided by its
// mean over the request's candidates so QS centres on 1, then clamped to [0.5, 1.5].
import { BidType } from '../protocol/schema';

export interface QualityWeights {
  /** CPC: pCVR exponent. */
  alpha: number;
  /** Relevance exponent. */
  beta: number;
  /** Landing-page quality exponent. */
  gamma: number;
  /** CPM: pCTR exponent. */
  delta: number;
}

export const defaultQualityWeights: QualityWeights = { alpha: 0.5, beta: 0.3, gamma: 0.2, delta: 0.4 };

function mean(values: ArrayLike<number>, count: number): number {
  let sum = 0;
  for (let i = 0; i < count; i++) sum += values[i]!;
  return count > 0 && sum > 0 ? sum / count : 1;
}

/** Writes the quality score of the first `count` candidates into `out`. Relevance must be positive. */
export function qualityScores(
  count: number,
  bidType: Uint8Array,
  pCtr: Float64Array,
  pCvr: Float64Array,
  relevance: Float32Array,
  landingQuality: Float64Array,
  weights: QualityWeights,
  out: Float64Array,
): void {
  const ctrMean = mean(pCtr, count);
  const cvrMean = mean(pCvr, count);
  const relevanceMean = mean(relevance, count);
  const landingMean = mean(landingQuality, count);
  for (let i = 0; i < count; i++) {
    const rel = Math.pow(relevance[i]! / relevanceMean, weights.beta);
    const lpq = Math.pow(landingQuality[i]! / landingMean, weights.gamma);
    let qs = rel * lpq;
    if (bidType[i] === BidType.Cpc) qs *= Math.pow(pCvr[i]! / cvrMean, weights.alpha);
    else if (bidType[i] === BidType.Cpm) qs *= Math.pow(pCtr[i]! / ctrMean, weights.delta);
    out[i] = Math.min(1.5, Math.max(0.5, qs));
  }
}
