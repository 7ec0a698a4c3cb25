// Stage "auction": the request's rules (its placement's, with the request's slots, floor and
// auction type), then ranking and pricing of the candidates.
import { type AuctionOutcome, type AuctionRules, runAuction } from '../auction/auction';
import type { Catalog } from '../catalog/catalog';
import { AuctionType, Placement } from '../protocol/schema';
import type { ParsedAdRequest } from './parse_request';
import type { DecisionScratch } from './scratch';

const mechanisms: Partial<Record<AuctionType, AuctionRules['mechanism']>> = {
  [AuctionType.FirstPrice]: 'first_price',
  [AuctionType.SecondPrice]: 'second_price',
  [AuctionType.Gsp]: 'gsp',
  [AuctionType.Vcg]: 'vcg',
};

/**
 * Runs the auction over the first `count` candidates of scratch (adIndex, bidType, pCtr, pCvr and
 * quality filled by the stages before); fills scratch.bidMicros. `rules` is indexed by Placement.
 */
export function auctionCandidates(
  parsed: ParsedAdRequest,
  rules: readonly AuctionRules[],
  catalog: Catalog,
  count: number,
  scratch: DecisionScratch,
): AuctionOutcome {
  const { adIndex, bidMicros } = scratch;
  const adBidMicros = catalog.bidMicros;
  for (let i = 0; i < count; i++) bidMicros[i] = adBidMicros[adIndex[i]!]!;
  const placement = rules[parsed.placement] ?? rules[Placement.Unknown]!;
  const request = scratch.rules;
  request.mechanism = mechanisms[parsed.request.auctionType()] ?? placement.mechanism;
  request.slots = parsed.slots;
  request.floorCpmMicros = parsed.floorCpmMicros;
  request.reserveMicros = placement.reserveMicros;
  request.incrementMicros = placement.incrementMicros;
  request.positionEffects = placement.positionEffects;
  request.minQuality = placement.minQuality;
  request.ranking = placement.ranking;
  scratch.candidates.count = count;
  return runAuction(scratch.candidates, request, scratch.outcome);
}
