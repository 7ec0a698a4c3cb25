// Prometheus metrics, declared once. Names carry the adserve_ prefix and base units;
// label values come from small closed sets.
import { Counter, type CounterConfiguration, Gauge, Histogram, type HistogramConfiguration, Registry, collectDefaultMetrics } from 'prom-client';

import { BulkHistogram } from './bulk_histogram';
import { type BuildInfo, type EngineStats, engineStages } from './engine/addon';
import type { Serving } from './engine/serving';
import type { Money } from './money/money';
import type { NoFillReason } from './protocol/schema';

// Dense between 0.25 ms and 100 ms, with exact boundaries at the SLO thresholds (5, 10, 25, 50,
// 100 ms) so that `le` ratio queries work.
export const latencyBucketsSeconds = [
  0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075, 0.1, 0.25, 0.5, 1,
];

export type Route = 'ads' | 'ws' | 'events' | 'admin' | 'metrics' | 'health' | 'other';

/**
 * Stage labels of adserve_stage_duration_seconds: the engine's stages (timed per batch, in
 * engineStages order, so engine stage i is label i), then the decision's own stages in the
 * order a request meets them (exclusions run before the engine, the rest after it).
 */
export const stageLabels = [...engineStages, 'exclusions', 'calibrate', 'quality', 'auction', 'encode'] as const;
export type StageLabel = (typeof stageLabels)[number];
export const stageLabel = Object.fromEntries(stageLabels.map((label, i) => [label, i])) as Record<StageLabel, number>;

interface Observer {
  observe(value: number): void;
}

/**
 * The histograms a decision observes, each observation one bucket increment (BulkHistogram).
 * Owned by the JS thread; one per Metrics.
 */
export class DecisionObservations {
  constructor(
    private readonly series: readonly Observer[],
    private readonly stages: number,
  ) {}

  /** `stage`: an index into stageLabels. */
  stage(stage: number, seconds: number): void {
    this.series[stage]!.observe(seconds);
  }

  batch(batchSize: number, queueWaitSeconds: number): void {
    this.series[this.stages]!.observe(batchSize);
    this.series[this.stages + 1]!.observe(queueWaitSeconds);
  }

  fill(ratio: number): void {
    this.series[this.stages + 2]!.observe(ratio);
  }

  /** `bidType`: BidType (CPC, CPM, CPA); the price in dollars per billable unit. */
  clearingPrice(bidType: number, dollars: number): void {
    this.series[this.stages + 3 + bidType]!.observe(dollars);
  }
}

export interface Metrics {
  registry: Registry;
  requestDuration: Histogram<'route' | 'placement' | 'status'>;
  /** Stage durations, batch sizes, queue waits, fill ratios and clearing prices of decisions. */
  decisions: DecisionObservations;
  degraded: Counter;
  shed: Counter;
  overdelivery: Counter;
  armRequests: Counter<'arm' | 'model'>;
  /** Counts one decision of an arm's model in adserve_arm_requests_total, added to the counter at the next read. */
  armRequest(arm: 'a' | 'b', model: string): void;
  calibration: Record<'impressions' | 'predictedClicks' | 'clicks' | 'predictedConversions' | 'conversions', Counter<'placement' | 'model'>>;
  spend: Counter<'bid_type'>;
  events: Counter<'type' | 'outcome'>;
  ledgerFsync: Histogram;
  redisErrors: Counter<'operation'>;
  /** Counts one answer without ads under its reason (adserve_no_fill_total). */
  noFill(reason: NoFillReason): void;
}

type Declared<C> = Omit<C, 'registers' | 'collect'>;

/** Values of the bid_type label, in BidType order (a BidType indexes them). */
export const bidTypeLabels = ['cpc', 'cpm', 'cpa'] as const;

/**
 * Outcomes of adserve_events_total for an event whose type was read: recorded, duplicate (409), or
 * the code of the refusal; `internal` is any unexpected failure, such as a ledger write that failed.
 */
export const eventOutcomes = [
  'recorded',
  'test',
  'duplicate',
  'out_of_order',
  'outside_attribution_window',
  'invalid_event',
  'invalid_token',
  'unknown_ad',
  'ledger_unavailable',
  'internal',
] as const;
export type EventOutcome = (typeof eventOutcomes)[number];
/** Values of adserve_no_fill_total's `reason` label, indexed by NoFillReason (None, 0, has no series). */
export const noFillReasonLabels = ['', 'no_eligible_ads', 'below_floor', 'blocked', 'deadline', 'capacity'] as const;
const eventTypes = ['impression', 'click', 'conversion'] as const;
const redisOperations = ['record', 'impressions', 'sync', 'report'] as const;

/** The histograms a decision observes through DecisionObservations. */
const decisionHistograms = {
  stageDuration: {
    name: 'adserve_stage_duration_seconds',
    help: 'Time per decision stage: engine stages per batch (parse, user, context, retrieve, light_score, score), then exclusions, calibrate, quality, auction, encode.',
    labelNames: ['stage'] as const,
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
  },
  batchSize: {
    name: 'adserve_batch_size',
    help: 'Requests in the engine batch that scored each request.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
  },
  queueWait: {
    name: 'adserve_batch_queue_wait_seconds',
    help: 'Time a request waited in the engine queue before its batch started.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
  },
  fillRatio: { name: 'adserve_fill_ratio', help: 'Filled slots over requested slots, per decision.', buckets: [0, 0.25, 0.5, 0.75, 1] },
  clearingPrice: {
    name: 'adserve_auction_clearing_price',
    help: 'Price of each winning ad in its billable unit (dollars; CPM per thousand impressions).',
    labelNames: ['bid_type'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50],
  },
} satisfies Record<string, Declared<HistogramConfiguration<string>>>;

const requestDuration: Declared<HistogramConfiguration<'route' | 'placement' | 'status'>> = {
  name: 'adserve_request_duration_seconds',
  help: 'Time from the first byte of a request to its answer, by route, placement and HTTP status.',
  labelNames: ['route', 'placement', 'status'],
  buckets: latencyBucketsSeconds,
};

const counters = {
  degraded: {
    name: 'adserve_deadline_degraded_total',
    help: 'Requests answered from the lightweight score because their deadline passed before model scoring.',
  },
  shed: { name: 'adserve_requests_shed_total', help: 'Requests refused with 503 because the engine queue was full.' },
  overdelivery: {
    name: 'adserve_budget_overdelivery_micros_total',
    help: 'Value of billable events served before a budget ran out but arriving after it: delivered, billed only up to the budget (micros).',
  },
} satisfies Record<string, Declared<CounterConfiguration<never>>>;

// Money moved, by bid type: micros, fractional for CPM impressions (a thousandth of the CPM price).
// A float64 sum, for rates and alerts; the exact figures are the spend stores' integer nanos.
const spend: Declared<CounterConfiguration<'bid_type'>> = {
  name: 'adserve_spend_micros_total',
  help: 'Spend charged by recorded events, by bid type (micros; a CPM impression charges a thousandth of its price, so this may be fractional).',
  labelNames: ['bid_type'],
};

const events: Declared<CounterConfiguration<'type' | 'outcome'>> = {
  name: 'adserve_events_total',
  help: 'Events whose type was read, by type and outcome: recorded, duplicate, or the code of the refusal (internal: an unexpected failure).',
  labelNames: ['type', 'outcome'],
};

const ledgerFsync: Declared<HistogramConfiguration<never>> = {
  name: 'adserve_ledger_fsync_duration_seconds',
  help: 'Time of each group commit of the local spend ledger: its write and datasync, which every event in it waits for.',
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
};

const redisErrors: Declared<CounterConfiguration<'operation'>> = {
  name: 'adserve_redis_command_errors_total',
  help: 'Redis commands that failed or timed out, by operation: record (an event), impressions (a frequency-cap read), sync (the spend mirror).',
  labelNames: ['operation'],
};

const noFill: Declared<CounterConfiguration<'reason'>> = {
  name: 'adserve_no_fill_total',
  help: 'Ad requests answered without ads, by reason: no_eligible_ads, below_floor, blocked, deadline (NoFill answers) and capacity (shed with 503).',
  labelNames: ['reason'],
};

const armRequests: Declared<CounterConfiguration<'arm' | 'model'>> = {
  name: 'adserve_arm_requests_total',
  help: 'Ad decisions per A/B arm and model; per-arm CTR and CVR come from adserve_calibration_* by model.',
  labelNames: ['arm', 'model'],
};

// Online calibration monitor: observed clicks / predicted clicks (and the same for conversions)
// per placement and model, from recorded events; drift is one ratio of rates in PromQL.
const calibrationCounters: Record<keyof Metrics['calibration'], Declared<CounterConfiguration<'placement' | 'model'>>> = {
  impressions: { name: 'adserve_calibration_impressions_total', help: 'Recorded impressions of served ads.', labelNames: ['placement', 'model'] },
  predictedClicks: {
    name: 'adserve_calibration_predicted_clicks_total',
    help: 'Sum of the calibrated pCTR of recorded impressions.',
    labelNames: ['placement', 'model'],
  },
  clicks: { name: 'adserve_calibration_clicks_total', help: 'Recorded clicks of served ads.', labelNames: ['placement', 'model'] },
  predictedConversions: {
    name: 'adserve_calibration_predicted_conversions_total',
    help: 'Sum of the calibrated pCVR of recorded clicks.',
    labelNames: ['placement', 'model'],
  },
  conversions: { name: 'adserve_calibration_conversions_total', help: 'Recorded conversions of served ads.', labelNames: ['placement', 'model'] },
};

function registerDecisionObservations(registry: Registry): DecisionObservations {
  const histogram = <T extends string>(spec: Declared<HistogramConfiguration<T>>): BulkHistogram<T> =>
    new BulkHistogram<T>({ name: spec.name, help: spec.help, labelNames: spec.labelNames, buckets: spec.buckets!, registers: [registry] });
  const { stageDuration, batchSize, queueWait, fillRatio, clearingPrice } = decisionHistograms;
  const stages = histogram<'stage'>(stageDuration);
  const series: Observer[] = [...stageLabels.map((stage) => stages.labels({ stage })), histogram(batchSize), histogram(queueWait), histogram(fillRatio)];
  const prices = histogram<'bid_type'>(clearingPrice);
  // In BidType order, as DecisionObservations.clearingPrice indexes them.
  for (const bidType of bidTypeLabels) series.push(prices.labels({ bid_type: bidType }));
  return new DecisionObservations(series, stageLabels.length);
}

/**
 * With `eventLoopLagResolutionMs` the registry also exports Node's process metrics (prom-client's
 * defaults: CPU, memory, GC, event-loop lag). Only the registry /metrics serves needs them: their
 * lag monitor is a timer that wakes the JS thread every `eventLoopLagResolutionMs` even when no
 * request arrives, so a registry nobody scrapes must not start one.
 */
export function createMetrics(build: BuildInfo, version: string, eventLoopLagResolutionMs?: number): Metrics {
  const registry = new Registry();
  if (eventLoopLagResolutionMs !== undefined) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: eventLoopLagResolutionMs });
  const info = new Gauge({
    name: 'adserve_build_info',
    help: 'Versions of adserve and of the native libraries it runs on (always 1).',
    labelNames: ['version', 'torch', 'faiss', 'flatbuffers', 'cuda'] as const,
    registers: [registry],
  });
  info.set({ version, torch: build.torch, faiss: build.faiss, flatbuffers: build.flatbuffers, cuda: String(build.cuda) }, 1);
  const counter = <T extends string>(spec: Declared<CounterConfiguration<T>>): Counter<T> => new Counter<T>({ ...spec, registers: [registry] });
  const calibration = Object.fromEntries(Object.entries(calibrationCounters).map(([field, spec]) => [field, counter(spec)])) as Metrics['calibration'];
  // Every series of a closed label set is exported from the start at 0, so that increase() in an
  // alert sees the first event after a restart, not only the second.
  const moneySpend = counter(spend);
  for (const bidType of bidTypeLabels) moneySpend.inc({ bid_type: bidType }, 0);
  const eventCounts = counter(events);
  for (const type of eventTypes) for (const outcome of eventOutcomes) eventCounts.inc({ type, outcome }, 0);
  const redisCommandErrors = counter(redisErrors);
  for (const operation of redisOperations) redisCommandErrors.inc({ operation }, 0);
  const noFillCounts = counter(noFill);
  // Bound once, indexed by NoFillReason, so a no-fill pays no label lookup; None has no series.
  const noFillSeries = noFillReasonLabels.map((reason) => (reason === '' ? undefined : noFillCounts.labels({ reason })));
  for (const series of noFillSeries) series?.inc(0);
  // Decisions per arm and model since the last read: a Map lookup per decision instead of
  // prom-client's label hashing; a model without decisions over a whole read interval is dropped.
  const armCounts = { a: new Map<string, number>(), b: new Map<string, number>() };
  const armRequestCounts = new Counter<'arm' | 'model'>({
    ...armRequests,
    registers: [registry],
    collect() {
      for (const arm of ['a', 'b'] as const) {
        for (const [model, count] of armCounts[arm]) {
          if (count === 0) armCounts[arm].delete(model);
          else this.inc({ arm, model }, count);
        }
        for (const model of armCounts[arm].keys()) armCounts[arm].set(model, 0);
      }
    },
  });
  return {
    registry,
    requestDuration: new Histogram({ ...requestDuration, registers: [registry] }),
    decisions: registerDecisionObservations(registry),
    degraded: counter(counters.degraded),
    shed: counter(counters.shed),
    overdelivery: counter(counters.overdelivery),
    armRequests: armRequestCounts,
    armRequest: (arm, model) => armCounts[arm].set(model, (armCounts[arm].get(model) ?? 0) + 1),
    calibration,
    spend: moneySpend,
    events: eventCounts,
    ledgerFsync: new Histogram({ ...ledgerFsync, registers: [registry] }),
    redisErrors: redisCommandErrors,
    noFill: (reason) => noFillSeries[reason]?.inc(),
  };
}

/** Campaigns out of budget, read from the money owner at scrape time. */
export function registerMoneyMetrics(metrics: Metrics, money: Money): void {
  new Gauge({
    name: 'adserve_budget_exhausted_campaigns',
    help: 'Campaigns whose daily or lifetime budget is spent, so none of their ads serve.',
    registers: [metrics.registry],
    collect() {
      this.set(money.exhaustedCount);
    },
  });
}

/** The models serving now, read at scrape time, so a swap or an ended A/B test shows at the next scrape. */
export function registerServingMetrics(metrics: Metrics, arms: () => Array<{ arm: 'a' | 'b'; serving: Serving }>): void {
  new Gauge({
    name: 'adserve_model_info',
    help: 'The model each A/B arm serves (always 1): its manifest version and the SHA-256 of its model.pt.',
    labelNames: ['arm', 'version', 'sha256'] as const,
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const { arm, serving } of arms()) this.set({ arm, version: serving.modelVersion, sha256: serving.modelSha256 }, 1);
    },
  });
}

/**
 * Engine state read at scrape time: queue depth, and cache hits and misses as counters (the engine
 * keeps running totals; a swapped-in engine starts from zero, so only increases are added).
 */
export function registerEngineMetrics(metrics: Metrics, stats: () => EngineStats | undefined): void {
  new Gauge({
    name: 'adserve_engine_queue_depth',
    help: 'Requests waiting for the engine batcher.',
    registers: [metrics.registry],
    collect() {
      this.set(stats()?.queued ?? 0);
    },
  });
  const seen = new Map<string, number>();
  const counter = (name: string, help: string, field: (s: EngineStats, cache: 'user' | 'context') => number) =>
    new Counter({
      name,
      help,
      labelNames: ['cache'] as const,
      registers: [metrics.registry],
      collect() {
        const current = stats();
        if (!current) return;
        for (const cache of ['user', 'context'] as const) {
          const key = `${name}/${cache}`;
          const value = field(current, cache);
          const previous = seen.get(key) ?? 0;
          this.inc({ cache }, value >= previous ? value - previous : value);
          seen.set(key, value);
        }
      },
    });
  counter('adserve_engine_cache_hits_total', 'Embedding cache hits (user: unknown users; context: context towers).', (s, cache) =>
    cache === 'user' ? s.userCacheHits : s.contextCacheHits,
  );
  counter('adserve_engine_cache_misses_total', 'Embedding cache misses.', (s, cache) => (cache === 'user' ? s.userCacheMisses : s.contextCacheMisses));
}
