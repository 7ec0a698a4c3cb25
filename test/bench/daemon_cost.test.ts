// The benchmark's per-request stage times, read back from the daemon's own metrics registry
// (src/metrics.ts) after observing batches the way src/pipeline/ad_decision.ts does.
import { describe, expect, it } from 'vitest';

import { parseStageMetrics, stageMicrosPerRequest } from '../../bench/daemon_cost';
import type { BuildInfo } from '../../src/engine/addon';
import { createMetrics, type Metrics, stageLabel } from '../../src/metrics';

const build: BuildInfo = {
  torch: 't',
  faiss: 'f',
  flatbuffers: 'b',
  compiler: 'c',
  cuda: false,
  computeThreads: 1,
  ompMaxThreads: 1,
  workerThreads: 1,
  fusionKernels: { fp32: ['portable'], bf16: ['portable'], int16: ['portable'] },
  scanKernels: ['portable'],
};

// Every request of a batch observes the batch's engine stage time and the batch's size.
function observeBatch(metrics: Metrics, retrieveMicros: number, calibrateMicros: number[]): void {
  for (const calibrate of calibrateMicros) {
    metrics.decisions.batch(calibrateMicros.length, 0);
    metrics.decisions.stage(stageLabel.retrieve, retrieveMicros / 1e6);
    metrics.decisions.stage(stageLabel.calibrate, calibrate / 1e6);
  }
}

describe('stage time per request', () => {
  it('splits an engine batch time among its requests and averages JS stages per request', async () => {
    const metrics = createMetrics(build, 'test');
    observeBatch(metrics, 9999, [1000]); // before the trial: left out by the difference
    const before = parseStageMetrics(await metrics.registry.metrics());
    // 400 µs of retrieval per request: a batch of 1 in 400 µs, a batch of 4 in 1600 µs.
    observeBatch(metrics, 400, [10]);
    observeBatch(metrics, 1600, [20, 30, 40, 50]);
    const after = parseStageMetrics(await metrics.registry.metrics());
    const stages = stageMicrosPerRequest(before, after);
    expect(stages.retrieve).toBeCloseTo(400, 6);
    expect(stages.calibrate).toBeCloseTo(30, 6);
    expect(Object.keys(stages).sort()).toEqual(['calibrate', 'retrieve']);
  });
});
