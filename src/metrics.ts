// Prometheus metrics, declared once (DESIGN.md §9). Names carry the adserve_ prefix and base units;
// label values come from small closed sets.
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { BuildInfo } from './engine/addon';

// Dense between 0.25 ms and 100 ms, with exact boundaries at the SLO thresholds (5, 10, 25, 50,
// 100 ms) so that `le` ratio queries work.
export const latencyBucketsSeconds = [
  0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03,
  0.04, 0.05, 0.06, 0.075, 0.1, 0.25, 0.5, 1,
];

export type Route = 'ads' | 'metrics' | 'health' | 'other';

export interface Metrics {
  registry: Registry;
  requestDuration: Histogram<'route' | 'placement' | 'status'>;
}

export function createMetrics(build: BuildInfo, version: string): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
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
  return { registry, requestDuration };
}
