// Prometheus metrics, declared once. Names carry the adserve_ prefix and base units;
// label values come from small closed sets.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { BulkHistogram } from './bulk_histogram';
import { type BuildInfo, type EngineStats, engineStages } from './engine/addon';

// Dense between 0.25 ms and 100 ms, with exact boundaries at the SLO thresholds (5, 10, 25, 50,
// 100 ms) so that `le` ratio queries work.
export const latencyBucketsSeconds = [
  0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03,
  0.04, 0.05, 0.06, 0.075, 0.1, 0.25, 0.5, 1,
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
  calibration: Record<'impressions' | 'predictedClicks' | 'clicks' | 'predictedConversions' | 'conversions', Counter<'placement' | 'model'>>;
}

export function createMetrics(build: BuildInfo, version: string): Metrics {
  const registry = new Registry();
  // 1 ms: at the default 10 ms the event-loop lag metrics cannot see the few-millisecond stalls that matter here.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1 });
  const requestDuration = new Histogram({
    name: 'adserve_request_duration_seconds',
    help: 'Time from the first byte of a request to its answer, by route, placement and HTTP status.',
    labelNames: ['route', 'placement', 'status'] as const,
    buckets: latencyBucketsSeconds,
    registers: [registry],
  });
  const info = new Gauge({
    name: 'adserve_build_info',
    help: 'Versions of adserve and of the native libraries it runs on (always 1).',
    labelNames: ['version', 'torch', 'faiss', 'flatbuffers', 'cuda'] as const,
    registers: [registry],
  });
  info.set({ version, torch: build.torch, faiss: build.faiss, flatbuffers: build.flatbuffers, cuda: String(build.cuda) }, 1);
  const stageDuration = new BulkHistogram({
    name: 'adserve_stage_duration_seconds',
    help: 'Time per decision stage: engine stages per batch (parse, user, context, retrieve, light_score, score), then exclusions, calibrate, quality, auction, encode.',
    labelNames: ['stage'] as const,
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });
  const batchSize = new BulkHistogram({
    name: 'adserve_batch_size',
    help: 'Requests in the engine batch that scored each request.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });
  const queueWait = new BulkHistogram({
    name: 'adserve_batch_queue_wait_seconds',
    help: 'Time a request waited in the engine queue before its batch started.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });
  const degraded = new Counter({
    name: 'adserve_deadline_degraded_total',
    help: 'Requests answered from the lightweight score because their deadline passed before model scoring.',
    registers: [registry],
  });
  const shed = new Counter({ name: 'adserve_requests_shed_total', help: 'Requests refused with 503 because the engine queue was full.', registers: [registry] });
  const overdelivery = new Counter({
    name: 'adserve_budget_overdelivery_micros_total',
    help: 'Value of billable events served before a budget ran out but arriving after it: delivered, billed only up to the budget (micros).',
    registers: [registry],
  });
  const fillRatio = new BulkHistogram({
    name: 'adserve_fill_ratio',
    help: 'Filled slots over requested slots, per decision.',
    buckets: [0, 0.25, 0.5, 0.75, 1],
    registers: [registry],
  });
  const clearingPrice = new BulkHistogram({
    name: 'adserve_auction_clearing_price',
    help: 'Price of each winning ad in its billable unit (dollars; CPM per thousand impressions).',
    labelNames: ['bid_type'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50],
    registers: [registry],
  });
  // Online calibration monitor: observed clicks / predicted clicks (and the same for conversions)
  // per placement and model, from recorded events; drift is one ratio of rates in PromQL.
  const calibrationCounter = (name: string, help: string) =>
    new Counter({ name: `adserve_calibration_${name}`, help, labelNames: ['placement', 'model'] as const, registers: [registry] });
  const calibration = {
    impressions: calibrationCounter('impressions_total', 'Recorded impressions of served ads.'),
    predictedClicks: calibrationCounter('predicted_clicks_total', 'Sum of the calibrated pCTR of recorded impressions.'),
    clicks: calibrationCounter('clicks_total', 'Recorded clicks of served ads.'),
    predictedConversions: calibrationCounter('predicted_conversions_total', 'Sum of the calibrated pCVR of recorded clicks.'),
    conversions: calibrationCounter('conversions_total', 'Recorded conversions of served ads.'),
  };
  const armRequests = new Counter({
    name: 'adserve_arm_requests_total',
    help: 'Ad decisions per A/B arm and model; per-arm CTR and CVR come from adserve_calibration_* by model.',
    labelNames: ['arm', 'model'] as const,
    registers: [registry],
  });
  const decisions = new DecisionObservations(
    [
      ...stageLabels.map((stage) => stageDuration.labels({ stage })),
      batchSize,
      queueWait,
      fillRatio,
      ...(['cpc', 'cpm', 'cpa'] as const).map((bidType) => clearingPrice.labels({ bid_type: bidType })),
    ],
    stageLabels.length,
  );
  return { registry, requestDuration, decisions, degraded, shed, overdelivery, armRequests, calibration };
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
