// The auction of docs/auction.md: rank by adjusted eCPM (or a multi-objective score), price by GSP
// (default), second price, first price or VCG. Pure: candidates in, winners and prices out, over typed arrays with no allocation
// per candidate. Money is integer micros.
import { BidType } from '../protocol/schema';

export type Micros = number;
export type Mechanism = 'gsp' | 'second_price' | 'first_price' | 'vcg';

export interface AuctionRules {
  mechanism: Mechanism;
  slots: number;
  /** Minimum adjusted eCPM (micros per thousand impressions), like OpenRTB's bidfloor. */
  floorCpmMicros: Micros;
  /** Reserve price per billable unit, indexed by BidType (CPC, CPM, CPA). */
  reserveMicros: readonly [Micros, Micros, Micros];
  /** Added to every computed GSP and second price after rounding up (ε; VCG prices get none). */
  incrementMicros: Micros;
  /** θ_1..θ_S: click multiplier of each slot, for VCG (θ_1 = 1, non-increasing). */
  positionEffects: readonly number[];
  /** Candidates under this quality score are not eligible (integrity; 0 admits all). */
  minQuality: number;
  /** Multi-objective ordering weights; absent: order by adjusted eCPM. Pricing uses adjusted eCPM either way. */
  ranking?: { ctr: number; cvr: number; value: number };
}

export interface AuctionCandidates {
  count: number;
  bidType: Uint8Array;
  bidMicros: Float64Array;
  pCtr: Float64Array;
  pCvr: Float64Array;
  quality: Float64Array;
  /** Ties in adjusted eCPM go to the lower value (the ad index). */
  tiebreak: Int32Array;
}

/**
 * Preallocated output; the first `winners` entries are valid, best slot first. Its working columns
 * grow to the largest candidate count seen, so whoever owns an outcome owns that space too.
 */
export interface AuctionOutcome {
  winners: number;
  candidate: Int32Array;
  priceMicros: Float64Array;
  adjEcpmMicros: Float64Array;
  work: AuctionWork;
}

interface AuctionWork {
  /** Eligible candidates, then (front) the best `slots + 1` of them in rank order. */
  order: Int32Array;
  /** Adjusted eCPM (micros) and ranking score, indexed by candidate. */
  ecpm: Float64Array;
  rank: Float64Array;
}

export function auctionOutcome(capacity: number): AuctionOutcome {
  return {
    winners: 0,
    candidate: new Int32Array(capacity),
    priceMicros: new Float64Array(capacity),
    adjEcpmMicros: new Float64Array(capacity),
    work: { order: new Int32Array(0), ecpm: new Float64Array(0), rank: new Float64Array(0) },
  };
}

// Values within a millionth of a micro of an integer are that integer: float noise such as
// 79.2e6 / 60 = 1320000.0000000002 must not round up to the next micro.
// Never negative: a zero price (VCG's last slot with no reserve) must not come out as -0.
const ceilMicros = (value: number): number => Math.max(0, Math.ceil(value - 1e-6));

// Read once: the protocol module re-exports the generated enums through getters, which
// unitFactor would otherwise call for every candidate.
const cpm = BidType.Cpm;
const cpa = BidType.Cpa;

/** Expected billable events per thousand impressions' worth of value: adjusted eCPM = bid × this. */
function unitFactor(candidates: AuctionCandidates, i: number): number {
  const quality = candidates.quality[i]!;
  switch (candidates.bidType[i]) {
    case cpm:
      return quality;
    case cpa:
      return candidates.pCtr[i]! * candidates.pCvr[i]! * 1000 * quality;
    default:
      return candidates.pCtr[i]! * 1000 * quality;
  }
}

/** Fills rank[i] for the eligible candidates with the multi-objective score, each term normalised by its maximum. */
function objectiveScores(candidates: AuctionCandidates, work: AuctionWork, eligible: number, weights: NonNullable<AuctionRules['ranking']>): void {
  const { order, ecpm, rank } = work;
  let maxCtr = 0;
  let maxCvr = 0;
  let maxValue = 0;
  for (let e = 0; e < eligible; e++) {
    const i = order[e]!;
    maxCtr = Math.max(maxCtr, candidates.pCtr[i]!);
    maxCvr = Math.max(maxCvr, candidates.pCvr[i]!);
    maxValue = Math.max(maxValue, ecpm[i]!);
  }
  for (let e = 0; e < eligible; e++) {
    const i = order[e]!;
    rank[i] =
      weights.ctr * (candidates.pCtr[i]! / (maxCtr || 1)) + weights.cvr * (candidates.pCvr[i]! / (maxCvr || 1)) + weights.value * (ecpm[i]! / (maxValue || 1));
  }
}

/**
 * VCG with a reserve (Myerson's payment): the ad in slot k pays, per impression's worth of value,
 * Σ_{j=k..m-1} (θ_j − θ*_{j+1}) × max(R, adjECPM of the ad ranked j+1), where R is the ad's own
 * reserve (and the request floor) in adjusted-eCPM terms, standing in for a missing competitor,
 * θ*_m = 0, and m the number of winners; divided by its expected billable value at slot k. The
 * reserve enters as a phantom competitor rather than as a clamp, which keeps the mechanism
 * truthful; no ε is added. The sum never falls below R × θ_k, so the price is never under the reserve.
 */
function vcgPrice(k: number, winners: number, eligible: number, work: AuctionWork, factor: number, reserveMicros: Micros, rules: AuctionRules): Micros {
  const { order: ranked, ecpm } = work;
  const phantom = Math.max(reserveMicros * factor, rules.floorCpmMicros);
  let perThousand = 0;
  for (let j = k; j < winners; j++) {
    const below = j + 1 < eligible ? ecpm[ranked[j + 1]!]! : phantom;
    perThousand += (slotEffect(rules, j, winners) - slotEffect(rules, j + 1, winners)) * Math.max(phantom, below);
  }
  return ceilMicros(perThousand / ((slotEffect(rules, k, winners) || 1) * factor));
}

/** θ_j of slot j, 0 past the last winner. */
function slotEffect(rules: AuctionRules, j: number, winners: number): number {
  return j < winners ? (rules.positionEffects[j] ?? 0) : 0;
}

function growWork(work: AuctionWork, count: number): void {
  if (work.order.length >= count) return;
  work.order = new Int32Array(count * 2);
  work.ecpm = new Float64Array(count * 2);
  work.rank = new Float64Array(count * 2);
}

/**
 * Moves the best `keep` of the `eligible` candidates listed in `order` to its front, best first:
 * higher rank, ties to the lower tiebreak (the full sort's order, for the entries pricing reads).
 * An insertion into a short sorted prefix: one comparison for most candidates.
 */
function selectBest(work: AuctionWork, eligible: number, keep: number, tiebreak: Int32Array): void {
  const { order, rank } = work;
  // The kept prefix never passes the entry being read (kept <= e), so it can share the array.
  let kept = 0;
  for (let e = 0; keep > 0 && e < eligible; e++) {
    const i = order[e]!;
    const score = rank[i]!;
    const tie = tiebreak[i]!;
    let at = kept < keep ? kept : keep - 1;
    if (kept === keep) {
      const last = order[at]!;
      if (!(score > rank[last]! || (score === rank[last]! && tie < tiebreak[last]!))) continue;
    } else {
      kept++;
    }
    // Shift worse entries down one place; the entry at `at` (if any) falls off the kept prefix.
    while (at > 0) {
      const above = order[at - 1]!;
      if (!(score > rank[above]! || (score === rank[above]! && tie < tiebreak[above]!))) break;
      order[at] = above;
      at--;
    }
    order[at] = i;
  }
}

export function runAuction(candidates: AuctionCandidates, rules: AuctionRules, out: AuctionOutcome): AuctionOutcome {
  const { count } = candidates;
  growWork(out.work, count);
  const { order, ecpm, rank } = out.work;
  let eligible = 0;
  for (let i = 0; i < count; i++) {
    const bid = candidates.bidMicros[i]!;
    ecpm[i] = bid * unitFactor(candidates, i);
    const admissible =
      bid >= rules.reserveMicros[candidates.bidType[i]!]! && ecpm[i]! >= rules.floorCpmMicros && ecpm[i]! > 0 && candidates.quality[i]! >= rules.minQuality;
    if (admissible) order[eligible++] = i;
  }
  if (rules.ranking) objectiveScores(candidates, out.work, eligible, rules.ranking);
  else for (let e = 0; e < eligible; e++) rank[order[e]!] = ecpm[order[e]!]!;

  const slots = rules.mechanism === 'second_price' || rules.mechanism === 'first_price' ? 1 : rules.slots;
  const winners = Math.min(slots, eligible, out.candidate.length);
  // Prices read the ad ranked just below each winner, so one more than the winners is ranked.
  selectBest(out.work, eligible, Math.min(winners + 1, eligible), candidates.tiebreak);
  for (let k = 0; k < winners; k++) {
    const i = order[k]!;
    const factor = unitFactor(candidates, i);
    const bid = candidates.bidMicros[i]!;
    let price: number;
    if (rules.mechanism === 'first_price') {
      price = bid;
    } else if (rules.mechanism === 'vcg') {
      price = Math.min(vcgPrice(k, winners, eligible, out.work, factor, rules.reserveMicros[candidates.bidType[i]!]!, rules), bid);
    } else {
      const perThousand = k + 1 < eligible ? ecpm[order[k + 1]!]! : rules.floorCpmMicros;
      price = ceilMicros(perThousand / factor) + rules.incrementMicros;
      price = Math.max(price, rules.reserveMicros[candidates.bidType[i]!]!, ceilMicros(rules.floorCpmMicros / factor));
      price = Math.min(price, bid);
    }
    out.candidate[k] = i;
    out.priceMicros[k] = price;
    out.adjEcpmMicros[k] = ecpm[i]!;
  }
  out.winners = winners;
  return out;
}
