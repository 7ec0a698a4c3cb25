// The ad decision, stage by stage: parse -> engine (user, context, retrieve, light_score, score)
// -> calibrate -> integrity + quality + auction -> encode. Without a loaded model the decision
// stops after parsing and says so (status NoEngine); no ads are invented.
import { type AuctionCandidates, auctionOutcome, runAuction, type AuctionRules } from '../auction/auction';
import { defaultQualityWeights, qualityScores } from '../auction/quality';
import { insertKeyword } from '../auction/keyword_insertion';
import { calibrate } from '../calibration/calibrate';
import { fnv1a } from '../catalog/packed_strings';
import type { Config } from '../config';
import { engineStages, isNativeError, type ScoreResult } from '../engine/addon';
import type { Serving } from '../engine/serving';
import { RequestError } from '../errors';
import type { Metrics } from '../metrics';
import { type SigningKey, signEventToken } from '../money/event_token';
import type { ImpressionHistory } from '../money/frequency_caps';
import { encodeAdResponse, type StageNanos, type WinningAd } from '../protocol/encode_response';
import { AuctionType, Placement, ResponseStatus } from '../protocol/schema';
import { type ParsedAdRequest, parseAdRequest } from './parse_request';

export interface DecisionContext {
  config: Config;
  /** Arm A: the serving model. */
  serving: Serving | undefined;
  /** Arm B of an A/B test: a second model taking `share` of users, chosen by a hash of the user id. */
  challenger?: { serving: Serving; share: number };
  signingKey: SigningKey;
  metrics: Metrics;
}

/** Which arm a user belongs to: a stable hash of the user id (the request id for anonymous traffic). */
export function armOf(context: DecisionContext, userOrRequestId: string): 'a' | 'b' {
  const challenger = context.challenger;
  if (!challenger) return 'a';
  return fnv1a(userOrRequestId) % 10_000 < challenger.share * 10_000 ? 'b' : 'a';
}

export interface AdDecision {
  response: Uint8Array;
  /** Placement name for metrics labels. */
  placement: string;
  requestId: string;
  /** Ads in the answer. */
  winners: number;
}

const mechanisms: Partial<Record<AuctionType, AuctionRules['mechanism']>> = {
  [AuctionType.FirstPrice]: 'first_price',
  [AuctionType.SecondPrice]: 'second_price',
  [AuctionType.Gsp]: 'gsp',
  [AuctionType.Vcg]: 'vcg',
};

// Scratch columns for the candidates of one request; the JS thread handles one decision at a time
// between awaits, so one set is enough.
class Scratch {
  capacity = 0;
  bidType = new Uint8Array(0);
  bidMicros = new Float64Array(0);
  pCtr = new Float64Array(0);
  pCvr = new Float64Array(0);
  relevance = new Float32Array(0);
  landing = new Float64Array(0);
  quality = new Float64Array(0);
  adIndex = new Int32Array(0);
  outcome = auctionOutcome(0);

  ensure(count: number, slots: number): void {
    if (count > this.capacity) {
      this.capacity = count;
      this.bidType = new Uint8Array(count);
      this.bidMicros = new Float64Array(count);
      this.pCtr = new Float64Array(count);
      this.pCvr = new Float64Array(count);
      this.relevance = new Float32Array(count);
      this.landing = new Float64Array(count);
      this.quality = new Float64Array(count);
      this.adIndex = new Int32Array(count);
    }
    if (this.outcome.candidate.length < slots) this.outcome = auctionOutcome(slots);
  }
}

const scratch = new Scratch();

/**
 * Campaign codes the engine keeps out of this request: those the user reached the frequency cap of,
 * and those pacing sits out of this auction (one participation draw per throttled campaign).
 */
function excludedCampaigns(serving: Serving, impressions: ImpressionHistory, nowMs: number): Uint32Array {
  const capped = serving.frequency.cappedCampaigns(impressions, nowMs);
  const throttled = serving.pacer.sittingOut(Math.random);
  const codes = new Uint32Array(capped.length + throttled.length);
  let count = 0;
  for (const campaignId of capped) codes[count++] = serving.campaignCode.get(campaignId)!;
  for (const campaignId of throttled) codes[count++] = serving.campaignCode.get(campaignId)!;
  return codes;
}

function nanosSince(started: bigint): bigint {
  return process.hrtime.bigint() - started;
}

async function scoreWithEngine(serving: Serving, body: Uint8Array, budgetMs: number, excluded: Uint32Array): Promise<ScoreResult> {
  try {
    return await serving.engine.score(body, Math.max(0, budgetMs), excluded);
  } catch (error) {
    if (isNativeError(error) && (error.code === 'E_QUEUE_FULL' || error.code === 'E_SHUTTING_DOWN')) {
      throw new RequestError(503, 'overloaded', `${error.message}; retry shortly`);
    }
    throw error;
  }
}

export async function decideAds(body: Uint8Array, context: DecisionContext): Promise<AdDecision> {
  const started = process.hrtime.bigint();
  const parsed = parseAdRequest(body, context.config);
  const placement = Placement[parsed.placement] ?? 'unknown';
  const parseNs = nanosSince(started);
  const { metrics } = context;
  const arm = armOf(context, parsed.userId || parsed.requestId);
  const serving = arm === 'b' ? context.challenger!.serving : context.serving;
  if (!serving) {
    return {
      placement,
      requestId: parsed.requestId,
      winners: 0,
      response: encodeAdResponse({
        requestId: parsed.requestId,
        status: ResponseStatus.NoEngine,
        message: 'no engine loaded: no model and catalog are available, so no auction ran',
        timings: parsed.debug ? [{ stage: 'parse', nanos: parseNs }] : undefined,
      }),
    };
  }

  // Read before scoring, since retrieval applies the caps: with shared state a round trip to Redis,
  // only for identified users of a catalog with capped campaigns.
  const impressions = await serving.frequency.history(parsed.userId, Date.now(), parsed.tmaxMs - Number(nanosSince(started)) / 1e6);
  const excluded = excludedCampaigns(serving, impressions, Date.now());
  const result = await scoreWithEngine(serving, body, parsed.tmaxMs - Number(nanosSince(started)) / 1e6, excluded);
  metrics.armRequests.inc({ arm, model: serving.modelVersion });
  metrics.batchSize.observe(result.batchSize);
  metrics.queueWait.observe(result.queueWaitNs / 1e9);
  engineStages.forEach((stage, i) => metrics.stageDuration.observe({ stage }, result.stageNs[i]! / 1e9));
  if (result.degraded) metrics.degraded.inc();

  let mark = process.hrtime.bigint();
  const count = result.adIndex.length;
  scratch.ensure(count, parsed.slots);
  const { catalog, history } = serving;
  // The engine already left out blocked, capped and paced-out ads: every candidate enters.
  for (let i = 0; i < count; i++) {
    const ad = result.adIndex[i]!;
    scratch.adIndex[i] = ad;
    scratch.bidType[i] = catalog.bidType[ad]!;
    scratch.bidMicros[i] = catalog.bidMicros[ad]!;
    // Degraded answers have no model scores: fall back to the ad's historical rates.
    scratch.pCtr[i] = result.degraded ? history.ctr[ad]! : calibrate(serving.calibration.ctr, result.ctrLogit[i]!);
    scratch.pCvr[i] = result.degraded ? history.cvr[ad]! : calibrate(serving.calibration.cvr, result.cvrLogit[i]!);
    scratch.relevance[i] = Math.max(result.light[i]!, 1e-6);
    scratch.landing[i] = catalog.landingQuality[ad]!;
  }
  const calibrateNs = nanosSince(mark);
  mark = process.hrtime.bigint();

  qualityScores(count, scratch.bidType, scratch.pCtr, scratch.pCvr, scratch.relevance, scratch.landing, defaultQualityWeights, scratch.quality);
  const candidates: AuctionCandidates = {
    count,
    bidType: scratch.bidType,
    bidMicros: scratch.bidMicros,
    pCtr: scratch.pCtr,
    pCvr: scratch.pCvr,
    quality: scratch.quality,
    tiebreak: scratch.adIndex,
  };
  const placementRules = serving.rules[parsed.placement] ?? serving.rules[Placement.Unknown]!;
  const rules: AuctionRules = {
    ...placementRules,
    mechanism: mechanisms[parsed.request.auctionType()] ?? placementRules.mechanism,
    slots: parsed.slots,
    floorCpmMicros: parsed.floorCpmMicros,
  };
  const outcome = runAuction(candidates, rules, scratch.outcome);
  const auctionNs = nanosSince(mark);
  mark = process.hrtime.bigint();

  const response = encodeWinners(parsed, serving, context, outcome, result.degraded, {
    parseNs,
    engine: result.stageNs,
    calibrateNs,
    auctionNs,
    started: mark,
  });
  metrics.stageDuration.observe({ stage: 'calibrate' }, Number(calibrateNs) / 1e9);
  metrics.stageDuration.observe({ stage: 'auction' }, Number(auctionNs) / 1e9);
  metrics.stageDuration.observe({ stage: 'encode' }, Number(nanosSince(mark)) / 1e9);
  metrics.fillRatio.observe(outcome.winners / parsed.slots);
  return { placement, requestId: parsed.requestId, winners: outcome.winners, response };
}

interface Timings {
  parseNs: bigint;
  engine: Float64Array;
  calibrateNs: bigint;
  auctionNs: bigint;
  started: bigint;
}

function encodeWinners(
  parsed: ParsedAdRequest,
  serving: Serving,
  context: DecisionContext,
  outcome: ReturnType<typeof auctionOutcome>,
  degraded: boolean,
  timings: Timings,
): Uint8Array {
  const { catalog } = serving;
  const issuedMs = Date.now();
  const expiresMs = issuedMs + context.config.eventTokenTtlSeconds * 1000;
  const ads: WinningAd[] = [];
  for (let slot = 0; slot < outcome.winners; slot++) {
    const i = outcome.candidate[slot]!;
    const ad = scratch.adIndex[i]!;
    const priceMicros = outcome.priceMicros[slot]!;
    const bidType = scratch.bidType[i]!;
    context.metrics.clearingPrice.observe({ bid_type: ['cpc', 'cpm', 'cpa'][bidType]! }, priceMicros / 1e6);
    ads.push({
      slot,
      adId: catalog.adId.at(ad)!,
      campaignId: catalog.campaignId[ad]!,
      advertiserId: catalog.advertiserId[ad]!,
      productId: catalog.productId.at(ad)!,
      title: insertKeyword(catalog.title.at(ad)!, parsed.placement === Placement.Search ? (parsed.request.query() ?? undefined) : undefined),
      imageUrl: catalog.imageUrl.at(ad)!,
      landingUrl: catalog.landingUrl.at(ad)!,
      bidType,
      bidMicros: scratch.bidMicros[i]!,
      priceMicros,
      pCtr: scratch.pCtr[i]!,
      pCvr: scratch.pCvr[i]!,
      ecpmMicros: outcome.adjEcpmMicros[slot]!,
      quality: scratch.quality[i]!,
      eventToken: signEventToken(
        {
          requestId: parsed.requestId, adId: catalog.adId.at(ad)!, slot, bidType, priceMicros, issuedMs, expiresMs, userId: parsed.userId,
          pCtr: scratch.pCtr[i]!, pCvr: scratch.pCvr[i]!, placement: Placement[parsed.placement] ?? 'unknown', modelVersion: serving.modelVersion,
        },
        context.signingKey,
      ),
    });
  }
  let stageTimings: StageNanos[] | undefined;
  if (parsed.debug) {
    stageTimings = [
      { stage: 'parse', nanos: timings.parseNs },
      ...engineStages.slice(1).map((stage, i) => ({ stage, nanos: BigInt(Math.round(timings.engine[i + 1]!)) })),
      { stage: 'calibrate', nanos: timings.calibrateNs },
      { stage: 'auction', nanos: timings.auctionNs },
      { stage: 'encode', nanos: nanosSince(timings.started) },
    ];
  }
  return encodeAdResponse({
    requestId: parsed.requestId,
    status: outcome.winners > 0 ? ResponseStatus.Ok : ResponseStatus.NoFill,
    message: outcome.winners > 0 ? undefined : 'no eligible ad cleared the floor and reserve prices',
    degraded,
    modelVersion: serving.modelVersion,
    ads,
    timings: stageTimings,
  });
}
