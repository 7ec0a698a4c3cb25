// Working space of one decision: the candidate columns every stage after the engine reads and
// writes, and the auction's outcome. The JS thread runs one decision's synchronous stages at a
// time (scratch is filled and read between two awaits), so one DecisionScratch per process is
// enough; its owner creates it and passes it in.
import { type AuctionCandidates, type AuctionOutcome, type AuctionRules, auctionOutcome } from '../auction/auction';
import { type CalibrationParams, IsotonicIndex } from '../calibration/calibrate';

export class DecisionScratch {
  capacity = 0;
  /** Candidate columns, indexed by the candidate's position in the engine's result. */
  adIndex = new Int32Array(0);
  bidType = new Uint8Array(0);
  bidMicros = new Float64Array(0);
  pCtr = new Float64Array(0);
  pCvr = new Float64Array(0);
  relevance = new Float32Array(0);
  landing = new Float64Array(0);
  logLanding = new Float64Array(0);
  quality = new Float64Array(0);
  outcome: AuctionOutcome = auctionOutcome(0);
  /** The request's auction rules, rewritten in place by each decision. */
  readonly rules: AuctionRules = {
    mechanism: 'gsp',
    slots: 1,
    floorCpmMicros: 0,
    reserveMicros: [0, 0, 0],
    incrementMicros: 0,
    positionEffects: [],
    minQuality: 0,
  };
  /** The auction's view of the columns above (count set per request). */
  readonly candidates: AuctionCandidates = {
    count: 0,
    bidType: this.bidType,
    bidMicros: this.bidMicros,
    pCtr: this.pCtr,
    pCvr: this.pCvr,
    quality: this.quality,
    tiebreak: this.adIndex,
  };
  readonly noExclusions = new Uint32Array(0);

  /** Prepared isotonic maps, by the model's map each was made from (a swapped-in model brings new ones). */
  private readonly isotonic = new WeakMap<CalibrationParams, IsotonicIndex>();

  /** ln(landing quality) of each ad, by the catalog column it came from; NaN until an ad is first scored. */
  private readonly adLogLanding = new WeakMap<Float32Array, Float64Array>();

  /** The log of each ad's landing quality, kept because an ad's is the same in every auction it enters. */
  adLogLandingOf(landingQuality: Float32Array): Float64Array {
    let logs = this.adLogLanding.get(landingQuality);
    if (!logs) this.adLogLanding.set(landingQuality, (logs = new Float64Array(landingQuality.length).fill(Number.NaN)));
    return logs;
  }

  /** The prepared index of an isotonic map, made on first use; undefined for other kinds. */
  isotonicIndex(params: CalibrationParams): IsotonicIndex | undefined {
    if (params.kind !== 'isotonic') return undefined;
    let index = this.isotonic.get(params);
    if (!index) this.isotonic.set(params, (index = new IsotonicIndex(params)));
    return index;
  }

  /** Makes room for `count` candidates and `slots` winners. */
  ensure(count: number, slots: number): void {
    if (count > this.capacity) {
      this.capacity = count;
      this.adIndex = new Int32Array(count);
      this.bidType = new Uint8Array(count);
      this.bidMicros = new Float64Array(count);
      this.pCtr = new Float64Array(count);
      this.pCvr = new Float64Array(count);
      this.relevance = new Float32Array(count);
      this.landing = new Float64Array(count);
      this.logLanding = new Float64Array(count);
      this.quality = new Float64Array(count);
      Object.assign(this.candidates, {
        bidType: this.bidType,
        bidMicros: this.bidMicros,
        pCtr: this.pCtr,
        pCvr: this.pCvr,
        quality: this.quality,
        tiebreak: this.adIndex,
      });
    }
    if (this.outcome.candidate.length < slots) this.outcome = { ...auctionOutcome(slots), work: this.outcome.work };
  }
}
