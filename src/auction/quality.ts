// Quality score: multiplicative and non-compensatory, each component divided by its
// mean over the request's candidates so QS centres on 1, then clamped to [0.5, 1.5].
import { BidType } from '../protocol/schema';

/** Exponents of the components; positive (a zero weight on a zero component would give NaN, not 1). */
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

// Read once: the protocol module re-exports the generated enums through getters, which the
// candidate loop would otherwise call for every candidate (about a third of this stage's time).
const cpc = BidType.Cpc;
const cpm = BidType.Cpm;

const logHigh = Math.log(1.5) + 1e-9;
const logLow = Math.log(0.5) - 1e-9;

function mean(values: ArrayLike<number>, count: number): number {
  let sum = 0;
  for (let i = 0; i < count; i++) sum += values[i]!;
  return count > 0 && sum > 0 ? sum / count : 1;
}

/**
 * Writes the quality score of the first `count` candidates into `out`. Relevance must be positive;
 * `logLandingQuality[i]` is Math.log(landingQuality[i]) (an ad's, so its owner can keep it).
 * Computed in the log domain, Π (xᵢ / meanᵢ)^wᵢ = exp(Σ wᵢ ln xᵢ − Σ wᵢ ln meanᵢ), with the means'
 * part once per request: one exp and one or two logs per candidate instead of three pows (equal
 * to the pow form within a few ulps).
 */
export function qualityScores(
  count: number,
  bidType: Uint8Array,
  pCtr: Float64Array,
  pCvr: Float64Array,
  relevance: Float32Array,
  landingQuality: Float64Array,
  logLandingQuality: Float64Array,
  weights: QualityWeights,
  out: Float64Array,
): void {
  const { alpha, beta, gamma, delta } = weights;
  const shared = beta * Math.log(mean(relevance, count)) + gamma * Math.log(mean(landingQuality, count));
  const cpcOffset = shared + alpha * Math.log(mean(pCvr, count));
  const cpmOffset = shared + delta * Math.log(mean(pCtr, count));
  for (let i = 0; i < count; i++) {
    let logQs = beta * Math.log(relevance[i]!) + gamma * logLandingQuality[i]!;
    if (bidType[i] === cpc) logQs += alpha * Math.log(pCvr[i]!) - cpcOffset;
    else if (bidType[i] === cpm) logQs += delta * Math.log(pCtr[i]!) - cpmOffset;
    else logQs -= shared;
    // Scores clamped either way skip the exp; the margin keeps the boundary cases on the exp path.
    out[i] = logQs > logHigh ? 1.5 : logQs < logLow ? 0.5 : Math.min(1.5, Math.max(0.5, Math.exp(logQs)));
  }
}
