// The ad decision, one request top to bottom; each stage is a function of its own file here:
//   parse (parse_request.ts) -> exclusions (exclusions.ts) -> the engine's user, context, retrieve,
//   light_score and score (engine_score.ts) -> calibrate (calibrate_candidates.ts) -> quality
//   (quality.ts) -> auction (auction.ts) -> no-fill reason (no_fill.ts) -> encode (encode.ts).
// Without a loaded model the decision stops after parsing and says so (status NoEngine); no ads
// are invented. Time, chance and working space come in through the DecisionContext.
import type { AuctionOutcome } from '../auction/auction';
import { fnv1a } from '../catalog/packed_strings';
import type { Config } from '../config';
import { engineStages } from '../engine/addon';
import type { Serving } from '../engine/serving';
import { type Metrics, stageLabel } from '../metrics';
import type { DecisionCounters } from '../money/decision_counters';
import type { SigningKey } from '../money/event_token';
import { encodeAdResponse } from '../protocol/encode_response';
import { NoFillReason, Placement, ResponseStatus } from '../protocol/schema';
import { auctionCandidates } from './auction';
import { calibrateCandidates } from './calibrate_candidates';
import type { Clock, RandomSource } from './clock';
import { encodeDecision } from './encode';
import { noFillReason } from './no_fill';
import { scoreCandidates } from './engine_score';
import { excludedCampaigns } from './exclusions';
import { parseAdRequest } from './parse_request';
import { scoreQuality } from './quality';
import type { DecisionScratch } from './scratch';

export interface DecisionContext {
  config: Config;
  /** Arm A: the serving model. */
  serving: Serving | undefined;
  /** Arm B of an A/B test: a second model taking `share` of users, chosen by a hash of the user id. */
  challenger?: { serving: Serving; share: number };
  signingKey: SigningKey;
  metrics: Metrics;
  clock: Clock;
  /** Pacing's participation draws. */
  random: RandomSource;
  /** The process's one working space for decisions. */
  scratch: DecisionScratch;
  /** Report counters of auctions entered and won; unset for warm-up and trial decisions, which no report shows. */
  reportCounters?: DecisionCounters;
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

export async function decideAds(body: Uint8Array, context: DecisionContext): Promise<AdDecision> {
  const { clock, scratch, metrics } = context;
  const started = clock.monotonic();
  const parsed = parseAdRequest(body, context.config);
  const placement = Placement[parsed.placement] ?? 'unknown';
  let mark = clock.monotonic();
  const parseMs = mark - started;
  const arm = armOf(context, parsed.userId || parsed.requestId);
  const serving = arm === 'b' ? context.challenger!.serving : context.serving;
  if (!serving) return noEngine(parsed.requestId, placement, context.config.currency, parsed.debug ? parseMs : undefined);

  const excluded = await excludedCampaigns(serving, parsed.userId, parsed.tmaxMs - (clock.monotonic() - started), clock, context.random, scratch);
  const exclusionsMs = observe(metrics, 'exclusions', mark, clock.monotonic());
  const result = await scoreCandidates(serving.engine, body, parsed.tmaxMs - (clock.monotonic() - started), excluded, parsed.personalised);
  metrics.armRequest(arm, serving.modelVersion);
  if (result.degraded) metrics.degraded.inc();
  const { decisions } = metrics;
  decisions.batch(result.batchSize, result.queueWaitNs / 1e9);
  for (let stage = 0; stage < engineStages.length; stage++) decisions.stage(stage, result.stageNs[stage]! / 1e9);

  // From here to the answer nothing awaits, so scratch belongs to this decision throughout.
  const count = result.adIndex.length;
  scratch.ensure(count, parsed.slots);
  mark = clock.monotonic();
  calibrateCandidates(result, serving.calibration, serving.history, scratch);
  const calibrateMs = observe(metrics, 'calibrate', mark, (mark = clock.monotonic()));
  scoreQuality(result, serving.catalog, scratch);
  const qualityMs = observe(metrics, 'quality', mark, (mark = clock.monotonic()));
  const outcome = auctionCandidates(parsed, serving.rules, serving.catalog, count, scratch);
  const auctionMs = observe(metrics, 'auction', mark, (mark = clock.monotonic()));
  const reason = noFillReason(parsed, serving.catalog, count, outcome.winners, result.degraded);
  const issuedMs = clock.now();
  if (reason !== NoFillReason.None) metrics.noFill(reason);
  const response = encodeDecision(
    {
      parsed,
      catalog: serving.catalog,
      modelVersion: serving.modelVersion,
      outcome,
      degraded: result.degraded,
      noFillReason: reason,
      currency: context.config.currency,
      engineStageNs: result.stageNs,
      signingKey: context.signingKey,
      tokenTtlMs: context.config.eventTokenTtlSeconds * 1000,
      stageMs: { parse: parseMs, exclusions: exclusionsMs, calibrate: calibrateMs, quality: qualityMs, auction: auctionMs },
      startedMs: mark,
      issuedMs,
    },
    clock,
    scratch,
  );
  observe(metrics, 'encode', mark, clock.monotonic());
  for (let slot = 0; slot < outcome.winners; slot++) decisions.clearingPrice(scratch.bidType[outcome.candidate[slot]!]!, outcome.priceMicros[slot]! / 1e6);
  decisions.fill(outcome.winners / parsed.slots);
  // Test traffic is never billed, so reports leave its auctions out too.
  if (context.reportCounters && !parsed.test) countForReport(context.reportCounters, serving, placement, count, outcome, scratch, issuedMs);
  return { placement, requestId: parsed.requestId, winners: outcome.winners, response };
}

/** The auction's `count` candidates entered it; its winners won at their clearing prices. */
function countForReport(
  counters: DecisionCounters,
  serving: Serving,
  placement: string,
  count: number,
  outcome: AuctionOutcome,
  scratch: DecisionScratch,
  issuedMs: number,
): void {
  counters.enter(serving.catalog, placement, scratch.adIndex, count, issuedMs);
  for (let slot = 0; slot < outcome.winners; slot++) {
    const candidate = outcome.candidate[slot]!;
    counters.won(serving.catalog, placement, scratch.adIndex[candidate]!, scratch.bidType[candidate]!, outcome.priceMicros[slot]!, issuedMs);
  }
}

/** Records a stage that ran from `fromMs` to `toMs` (monotonic) and returns its duration in ms. */
function observe(metrics: Metrics, stage: 'exclusions' | 'calibrate' | 'quality' | 'auction' | 'encode', fromMs: number, toMs: number): number {
  const ms = toMs - fromMs;
  metrics.decisions.stage(stageLabel[stage], ms / 1e3);
  return ms;
}

function noEngine(requestId: string, placement: string, currency: string, parseMs: number | undefined): AdDecision {
  return {
    placement,
    requestId,
    winners: 0,
    response: encodeAdResponse({
      requestId,
      status: ResponseStatus.NoEngine,
      currency,
      message: 'no engine loaded: no model and catalog are available, so no auction ran',
      timings: parseMs === undefined ? undefined : [{ stage: 'parse', nanos: BigInt(Math.round(parseMs * 1e6)) }],
    }),
  };
}
