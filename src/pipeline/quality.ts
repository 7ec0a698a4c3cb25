// Stage "quality": each candidate's bid type, relevance and landing-page quality from the catalog
// and the engine's lightweight score, then its quality score.
import { defaultQualityWeights, qualityScores } from '../auction/quality';
import type { Catalog } from '../catalog/catalog';
import type { ScoreResult } from '../engine/addon';
import type { DecisionScratch } from './scratch';

/** Fills scratch.bidType, relevance, landing, logLanding and quality; reads scratch.adIndex, pCtr and pCvr (the calibrate stage's). */
export function scoreQuality(result: ScoreResult, catalog: Catalog, scratch: DecisionScratch): void {
  const count = result.adIndex.length;
  const { adIndex, bidType, relevance, landing, logLanding } = scratch;
  const { bidType: adBidType, landingQuality } = catalog;
  const adLogLanding = scratch.adLogLandingOf(landingQuality);
  const { light } = result;
  for (let i = 0; i < count; i++) {
    const ad = adIndex[i]!;
    bidType[i] = adBidType[ad]!;
    // Quality takes a power of relevance, which must stay positive.
    relevance[i] = Math.max(light[i]!, 1e-6);
    landing[i] = landingQuality[ad]!;
    let log = adLogLanding[ad]!;
    if (Number.isNaN(log)) adLogLanding[ad] = log = Math.log(landing[i]!);
    logLanding[i] = log;
  }
  qualityScores(count, bidType, scratch.pCtr, scratch.pCvr, relevance, landing, logLanding, defaultQualityWeights, scratch.quality);
}
