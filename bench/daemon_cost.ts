// What a daemon under test spends: its CPU time from /proc, and its time per decision stage from
// the stage histograms on /metrics.
import { readFileSync } from 'node:fs';

import { engineStages } from '../src/engine/addon';
import { stageLabels } from '../src/metrics';

// Stage labels of adserve_stage_duration_seconds: the engine's stages, timed per batch, then the
// JS thread's (exclusions, calibrate, quality, auction, encode), timed per request.
export const engineStageNames: readonly string[] = engineStages;
export const jsStageNames: readonly string[] = stageLabels.filter((stage) => !engineStageNames.includes(stage));

// utime + stime in clock ticks of 1/100 s: of the whole process (with its exited threads) from
// /proc/<pid>/stat, of one thread from /proc/<pid>/task/<tid>/stat; the main thread's tid is the pid.
function cpuSeconds(statPath: string): number {
  const fields = readFileSync(statPath, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds so far of process `pid`: all its threads, and its main (JS) thread alone. */
export function daemonCpu(pid: number): { total: number; jsThread: number } {
  return { total: cpuSeconds(`/proc/${pid}/stat`), jsThread: cpuSeconds(`/proc/${pid}/task/${pid}/stat`) };
}

export interface StageScrape {
  sums: Map<string, number>;
  counts: Map<string, number>;
  /** adserve_batch_size is observed once per request with its batch's size b: the sum is Σ b² over batches. */
  batchSum: number;
  batchCount: number;
  /** Requests answered from the lightweight score alone (their deadline passed before fusion). */
  degraded: number;
}

export async function scrapeStages(url: string): Promise<StageScrape> {
  return parseStageMetrics(await (await fetch(`${url}/metrics`)).text());
}

/** The stage and batch-size histograms' sums and counts in a Prometheus text exposition. */
export function parseStageMetrics(text: string): StageScrape {
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^adserve_stage_duration_seconds_(sum|count)\{stage="([a-z_]+)"\} ([0-9.e+-]+)$/gm)) {
    (match[1] === 'sum' ? sums : counts).set(match[2]!, Number(match[3]));
  }
  const number = (name: string): number => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    sums,
    counts,
    batchSum: number('adserve_batch_size_sum'),
    batchCount: number('adserve_batch_size_count'),
    degraded: number('adserve_deadline_degraded_total'),
  };
}

/**
 * Microseconds per request in each stage over a trial. The engine times its stages per batch and
 * every request of the batch observes that time, so the histogram sums Σ b·T over batches; divided
 * by Σ b² (the batch-size histogram's sum) that is each request's share T / b, exact for batches of
 * one size and for stages whose time grows in proportion to their batch. JS stages are per request.
 */
export function stageMicrosPerRequest(before: StageScrape, after: StageScrape): Record<string, number> {
  const stageMicros: Record<string, number> = {};
  const batchSquares = after.batchSum - before.batchSum;
  for (const [stage, sum] of after.sums) {
    const seconds = sum - (before.sums.get(stage) ?? 0);
    const count = after.counts.get(stage)! - (before.counts.get(stage) ?? 0);
    const perRequest = engineStageNames.includes(stage) ? batchSquares : count;
    if (perRequest > 0) stageMicros[stage] = (seconds / perRequest) * 1e6;
  }
  return stageMicros;
}
