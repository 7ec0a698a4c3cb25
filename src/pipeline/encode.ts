// Stage "encode": the winners as an AdResponse FlatBuffer, each with its sealed event token and
// (on search) the query inserted into its title.
import type { AuctionOutcome } from '../auction/auction';
import { insertKeyword } from '../auction/keyword_insertion';
import type { Catalog } from '../catalog/catalog';
import { engineStages } from '../engine/addon';
import { type SigningKey, sealEventToken, TokenTexts } from '../money/event_token';
import { encodeAdResponse, type StageNanos, type WinningAd } from '../protocol/encode_response';
import { NoFillReason, Placement, ResponseStatus } from '../protocol/schema';
import type { Clock } from './clock';
import { noFillMessages } from './no_fill';
import type { ParsedAdRequest } from './parse_request';
import type { DecisionScratch } from './scratch';

export interface EncodeInput {
  parsed: ParsedAdRequest;
  catalog: Catalog;
  modelVersion: string;
  outcome: AuctionOutcome;
  degraded: boolean;
  /** NoFillReason.None when the auction had winners. */
  noFillReason: NoFillReason;
  /** ISO 4217 account currency of every amount (config `currency`). */
  currency: string;
  /** The engine's stage durations for this request's batch (ns, in engineStages order). */
  engineStageNs: Float64Array;
  signingKey: SigningKey;
  /** The tokens' issue time (the clock's now() when the decision was made); they expire tokenTtlMs later. */
  issuedMs: number;
  tokenTtlMs: number;
  /** Milliseconds the decision's own earlier stages took, for debug answers. */
  stageMs: { parse: number; exclusions: number; calibrate: number; quality: number; auction: number };
  /** Monotonic time (ms) the encode stage started, for debug answers' encode timing. */
  startedMs: number;
}

const openingBrace = '{'.charCodeAt(0);
/** The tokens' texts of the decision being encoded (one JS thread, one decision at a time). */
const tokenTexts = new TokenTexts();
const nanos = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

/** What every winner of one decision shares: its tokens' issue and expiry, the placement's name, the query keyword insertion uses. */
interface DecisionShared {
  issuedMs: number;
  expiresMs: number;
  placement: string;
  query: string | undefined;
}

/** One winner of the auction as it goes out, with its sealed event token. */
function winningAd(input: EncodeInput, scratch: DecisionScratch, slot: number, shared: DecisionShared): WinningAd {
  const { parsed, catalog, outcome, modelVersion } = input;
  const i = outcome.candidate[slot]!;
  const ad = scratch.adIndex[i]!;
  const title = catalog.title.utf8At(ad)!;
  const priceMicros = outcome.priceMicros[slot]!;
  const bidType = scratch.bidType[i]!;
  const pCtr = scratch.pCtr[i]!;
  const pCvr = scratch.pCvr[i]!;
  const { issuedMs, expiresMs, placement, query } = shared;
  const token = {
    requestId: parsed.requestId,
    adId: catalog.adId.at(ad)!,
    slot,
    bidType,
    priceMicros,
    issuedMs,
    expiresMs,
    userId: parsed.userId,
    pCtr,
    pCvr,
    placement,
    modelVersion,
    test: parsed.test,
  };
  return {
    slot,
    adId: catalog.adId.utf8At(ad)!,
    campaignId: catalog.campaignId[ad]!,
    advertiserId: catalog.advertiserId[ad]!,
    productId: catalog.productId.utf8At(ad)!,
    // Only a title with a placeholder is read as text; the rest go out as the catalog's bytes.
    title: title.includes(openingBrace) ? insertKeyword(catalog.title.at(ad)!, query) : title,
    imageUrl: catalog.imageUrl.utf8At(ad)!,
    landingUrl: catalog.landingUrl.utf8At(ad)!,
    bidType,
    bidMicros: scratch.bidMicros[i]!,
    priceMicros,
    pCtr,
    pCvr,
    ecpmMicros: outcome.adjEcpmMicros[slot]!,
    quality: scratch.quality[i]!,
    eventToken: sealEventToken(token, input.signingKey, tokenTexts),
  };
}

/** Scratch holds the candidates' columns the auction ran on. */
export function encodeDecision(input: EncodeInput, clock: Clock, scratch: DecisionScratch): Uint8Array {
  const { parsed, outcome, modelVersion, issuedMs } = input;
  const shared: DecisionShared = {
    issuedMs,
    expiresMs: issuedMs + input.tokenTtlMs,
    placement: Placement[parsed.placement] ?? 'unknown',
    query: parsed.placement === Placement.Search ? (parsed.request.query() ?? undefined) : undefined,
  };
  const ads: WinningAd[] = [];
  tokenTexts.reset();
  for (let slot = 0; slot < outcome.winners; slot++) ads.push(winningAd(input, scratch, slot, shared));
  return encodeAdResponse({
    requestId: parsed.requestId,
    status: outcome.winners > 0 ? ResponseStatus.Ok : ResponseStatus.NoFill,
    message: noFillMessages[input.noFillReason],
    noFillReason: input.noFillReason,
    currency: input.currency,
    degraded: input.degraded,
    modelVersion,
    ads,
    timings: parsed.debug ? debugTimings(input, clock) : undefined,
  });
}

/** Every stage in the order the request met it; the encode stage up to this point. */
function debugTimings(input: EncodeInput, clock: Clock): StageNanos[] {
  const durations = input.stageMs;
  return [
    { stage: 'parse', nanos: nanos(durations.parse) },
    { stage: 'exclusions', nanos: nanos(durations.exclusions) },
    ...engineStages.slice(1).map((stage, i) => ({ stage, nanos: BigInt(Math.round(input.engineStageNs[i + 1]!)) })),
    { stage: 'calibrate', nanos: nanos(durations.calibrate) },
    { stage: 'quality', nanos: nanos(durations.quality) },
    { stage: 'auction', nanos: nanos(durations.auction) },
    { stage: 'encode', nanos: nanos(clock.monotonic() - input.startedMs) },
  ];
}
