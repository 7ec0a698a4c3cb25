// Stage "calibrate": the engine's logits -> calibrated pCTR and pCVR per candidate.
import type { ScoreResult } from '../engine/addon';
import { type CalibrationParams, calibrateColumn } from '../calibration/calibrate';
import type { AdHistory } from '../engine/engine';
import type { DecisionScratch } from './scratch';

/**
 * Fills scratch.adIndex, pCtr and pCvr for the result's candidates (scratch must hold them).
 * Degraded answers carry no model scores: each ad's historical rates stand in.
 */
export function calibrateCandidates(
  result: ScoreResult,
  calibration: { ctr: CalibrationParams; cvr: CalibrationParams },
  history: AdHistory,
  scratch: DecisionScratch,
): void {
  const count = result.adIndex.length;
  const { adIndex, pCtr, pCvr } = scratch;
  adIndex.set(result.adIndex);
  if (result.degraded) {
    const { ctr, cvr } = history;
    for (let i = 0; i < count; i++) {
      pCtr[i] = ctr[adIndex[i]!]!;
      pCvr[i] = cvr[adIndex[i]!]!;
    }
    return;
  }
  calibrateColumn(calibration.ctr, scratch.isotonicIndex(calibration.ctr), result.ctrLogit, count, pCtr);
  calibrateColumn(calibration.cvr, scratch.isotonicIndex(calibration.cvr), result.cvrLogit, count, pCvr);
}
