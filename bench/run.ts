// `npm run bench -- [--model dir] [--duration s] [--connections n] [--rate r] [--rounds n] [--sweep batching|all]`:
// drives the real daemon with autocannon and writes JSON + Markdown to bench/results/. Every ad-path
// number is reported next to baselines measured in the same run: GET /livez (uWebSockets.js and
// Node with no protocol work) and the ad path with batching off (maxBatch 1). The batching sweep
// crosses max batch with max delay; `all` adds candidates scored (100 / 300 / 1000) and slots (1 / 4).
// Trials are interleaved, each on a fresh daemon process; the daemon's own stage histograms give
// the per-stage breakdown.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import autocannon from 'autocannon';

import { projectRoot } from '../src/paths';
import { decodeAdResponse } from '../src/protocol/encode_request';
import { ResponseStatus } from '../src/protocol/schema';
import { startDaemon } from './daemon';
import { gitCommit, machineInfo, runBench, writeReport } from './report';
import { benchRequests } from './requests';

interface Scenario {
  name: string;
  /** Request body per call; absent for GET. */
  bodies?: Buffer[];
  path: string;
  /** Fixed offered load in requests/s; absent for a closed loop. */
  rate?: number;
  /** Daemon configuration for this scenario. */
  env?: Record<string, string>;
}

interface Trial {
  scenario: string;
  round: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; mean: number };
  requests: number;
  errors: number;
  non2xx: number;
  cpuMicrosPerRequest: number;
  /** Mean microseconds per decision stage, from the daemon's histograms. */
  stageMicros: Record<string, number>;
  meanBatchSize: number;
}

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    rate: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '2' },
    model: { type: 'string', default: 'models/demo' },
    sweep: { type: 'string', default: 'all' },
  },
});

function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

// autocannon hands bodies to onResponse as strings, so binary answers are checked here instead.
async function checkAdResponses(url: string, bodies: Buffer[]): Promise<void> {
  for (const body of bodies.slice(0, 20)) {
    const response = await fetch(`${url}/v1/ads`, { method: 'POST', headers: { 'Content-Type': 'application/x-flatbuffers' }, body });
    const decoded = decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
    if (response.status !== 200 || ![ResponseStatus.Ok, ResponseStatus.NoFill].includes(decoded.status())) {
      throw new Error(`unexpected answer: HTTP ${response.status}, status ${ResponseStatus[decoded.status()]} ${decoded.message() ?? ''}`);
    }
  }
}

async function scrapeStages(url: string): Promise<{ sums: Map<string, number>; counts: Map<string, number>; batchSum: number; batchCount: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^adserve_stage_duration_seconds_(sum|count)\{stage="([a-z_]+)"\} ([0-9.e+-]+)$/gm)) {
    (match[1] === 'sum' ? sums : counts).set(match[2]!, Number(match[3]));
  }
  const number = (name: string): number => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
  return { sums, counts, batchSum: number('adserve_batch_size_sum'), batchCount: number('adserve_batch_size_count') };
}

async function runTrial(scenario: Scenario, round: number): Promise<Trial> {
  const daemon = await startDaemon({ ADSERVE_MODEL_DIR: path.resolve(projectRoot, options.model!), ...scenario.env });
  try {
    if (scenario.bodies) await checkAdResponses(daemon.url, scenario.bodies);
    let next = 0;
    const bodies = scenario.bodies;
    const common = {
      url: daemon.url,
      connections: Number(options.connections),
      duration: Number(options.duration),
      overallRate: scenario.rate,
      requests: [
        bodies
          ? {
              method: 'POST' as const,
              path: scenario.path,
              headers: { 'content-type': 'application/x-flatbuffers' },
              setupRequest: (request: autocannon.Request) => ({ ...request, body: bodies[next++ % bodies.length] }),
            }
          : { method: 'GET' as const, path: scenario.path },
      ],
    };
    await autocannon({ ...common, duration: 2 }); // warm-up, not recorded
    const cpuBefore = processCpuSeconds(daemon.child.pid!);
    const stagesBefore = await scrapeStages(daemon.url);
    const result = await autocannon(common);
    const cpuSeconds = processCpuSeconds(daemon.child.pid!) - cpuBefore;
    const stagesAfter = await scrapeStages(daemon.url);
    const stageMicros: Record<string, number> = {};
    for (const [stage, sum] of stagesAfter.sums) {
      const count = stagesAfter.counts.get(stage)! - (stagesBefore.counts.get(stage) ?? 0);
      if (count > 0) stageMicros[stage] = ((sum - (stagesBefore.sums.get(stage) ?? 0)) / count) * 1e6;
    }
    const batches = stagesAfter.batchCount - stagesBefore.batchCount;
    return {
      scenario: scenario.name,
      round,
      requestsPerSecond: result.requests.average,
      latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p999: result.latency.p99_9, mean: result.latency.average },
      requests: result.requests.total,
      errors: result.errors + result.timeouts,
      non2xx: result.non2xx,
      cpuMicrosPerRequest: (cpuSeconds * 1e6) / Math.max(1, result.requests.total),
      stageMicros,
      meanBatchSize: batches > 0 ? (stagesAfter.batchSum - stagesBefore.batchSum) / batches : 0,
    };
  } finally {
    await daemon.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const bodies = benchRequests(2000);
  const rate = Number(options.rate);
  const batched = (maxBatch: number, maxDelayUs: number): Record<string, string> => ({ ADSERVE_MAX_BATCH: String(maxBatch), ADSERVE_MAX_DELAY_US: String(maxDelayUs) });
  const unbatched = batched(1, 0);
  const baseline = 'ads, maxBatch 1 (baseline)';
  const best = 'ads, maxBatch 32, 1000 µs';
  const scenarios: Scenario[] = [
    { name: 'livez (transport baseline)', path: '/livez' },
    { name: baseline, path: '/v1/ads', bodies, env: unbatched },
    { name: 'ads, maxBatch 8, 250 µs', path: '/v1/ads', bodies, env: batched(8, 250) },
    { name: 'ads, maxBatch 8, 1000 µs', path: '/v1/ads', bodies, env: batched(8, 1000) },
    { name: 'ads, maxBatch 32, 250 µs', path: '/v1/ads', bodies, env: batched(32, 250) },
    { name: best, path: '/v1/ads', bodies, env: batched(32, 1000) },
    { name: `ads @${rate}/s, maxBatch 1 (baseline)`, path: '/v1/ads', bodies, rate, env: unbatched },
    { name: `ads @${rate}/s, maxBatch 32, 1000 µs`, path: '/v1/ads', bodies, rate, env: batched(32, 1000) },
  ];
  if (options.sweep === 'all') {
    scenarios.push(
      { name: 'ads, 100 candidates scored (maxBatch 32, 1000 µs)', path: '/v1/ads', bodies, env: { ...batched(32, 1000), ADSERVE_SCORE_CANDIDATES: '100' } },
      { name: 'ads, 1000 candidates scored (maxBatch 32, 1000 µs)', path: '/v1/ads', bodies, env: { ...batched(32, 1000), ADSERVE_SCORE_CANDIDATES: '1000' } },
      { name: 'ads, 1 slot (maxBatch 32, 1000 µs)', path: '/v1/ads', bodies: benchRequests(2000, 1, 1), env: batched(32, 1000) },
      { name: 'ads, 4 slots (maxBatch 32, 1000 µs)', path: '/v1/ads', bodies: benchRequests(2000, 1, 4), env: batched(32, 1000) },
    );
  } else if (options.sweep !== 'batching') {
    throw new Error(`--sweep must be batching or all (got ${JSON.stringify(options.sweep)})`);
  }
  const trials: Trial[] = [];
  for (let round = 1; round <= Number(options.rounds); round++) {
    for (const scenario of scenarios) {
      const trial = await runTrial(scenario, round);
      process.stdout.write(`${trial.scenario} round ${round}: ${trial.requestsPerSecond.toFixed(0)} req/s, p99 ${trial.latencyMs.p99} ms, batch ${trial.meanBatchSize.toFixed(1)}\n`);
      trials.push(trial);
    }
  }
  const summary = scenarios.map((scenario) => {
    const own = trials.filter((t) => t.scenario === scenario.name);
    const stages = [...new Set(own.flatMap((t) => Object.keys(t.stageMicros)))];
    return {
      scenario: scenario.name,
      requestsPerSecond: median(own.map((t) => t.requestsPerSecond)),
      p50Ms: median(own.map((t) => t.latencyMs.p50)),
      p99Ms: median(own.map((t) => t.latencyMs.p99)),
      cpuMicrosPerRequest: median(own.map((t) => t.cpuMicrosPerRequest)),
      meanBatchSize: median(own.map((t) => t.meanBatchSize)),
      stageMicros: Object.fromEntries(stages.map((stage) => [stage, median(own.map((t) => t.stageMicros[stage] ?? 0))])),
      errors: own.reduce((sum, t) => sum + t.errors + t.non2xx, 0),
    };
  });
  const byName = new Map(summary.map((row) => [row.scenario, row]));
  const get = (name: string) => byName.get(name)!;
  const ratios = {
    batch32ThroughputVsUnbatched: get(best).requestsPerSecond / get(baseline).requestsPerSecond,
    unbatchedThroughputVsLivez: get(baseline).requestsPerSecond / get(scenarios[0]!.name).requestsPerSecond,
    batch32P99AtFixedRateVsUnbatched: get(scenarios[7]!.name).p99Ms / Math.max(get(scenarios[6]!.name).p99Ms, 1),
    batch32CpuPerRequestVsUnbatched: get(best).cpuMicrosPerRequest / get(baseline).cpuMicrosPerRequest,
  };
  const commit = gitCommit();
  const machine = machineInfo();
  const report = { date: new Date().toISOString(), commit, machine, options, summary, ratios, trials };
  const stageNames = ['parse', 'user', 'context', 'retrieve', 'light_score', 'score', 'calibrate', 'auction', 'encode'];
  const vsBaseline = (s: (typeof summary)[number]): string => (s.stageMicros.score === undefined ? '' : (s.requestsPerSecond / get(baseline).requestsPerSecond).toFixed(2));
  const rows = summary.map((s) => `| ${s.scenario} | ${s.requestsPerSecond.toFixed(0)} | ${vsBaseline(s)} | ${s.p50Ms} | ${s.p99Ms} | ${s.cpuMicrosPerRequest.toFixed(0)} | ${s.meanBatchSize.toFixed(1)} | ${s.errors} |`);
  const stageRows = summary
    .filter((s) => Object.keys(s.stageMicros).length > 0)
    .map((s) => `| ${s.scenario} | ${stageNames.map((stage) => (s.stageMicros[stage] ?? 0).toFixed(0)).join(' | ')} |`);
  const markdown = [
    `# HTTP benchmark, ${report.date}`,
    '',
    `commit ${commit}; model ${options.model}; ${machine.cpu} x${machine.cores}, ${machine.memoryGiB} GiB; Node ${machine.node}; ${options.connections} connections, ${options.duration} s per trial after a 2 s warm-up, ${options.rounds} interleaved rounds, medians shown; autocannon runs on the same 2-core box as the daemon, so absolute numbers understate a dedicated server: read the ratios.`,
    '',
    '| scenario | req/s | × maxBatch 1 | p50 ms | p99 ms | daemon CPU µs/req | mean batch | errors |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'Mean µs per stage (engine stages are per batch, shared by its requests):',
    '',
    `| scenario | ${stageNames.join(' | ')} |`,
    `|---|${stageNames.map(() => '---').join('|')}|`,
    ...stageRows,
    '',
    `Ratios: throughput maxBatch 32, 1000 µs / maxBatch 1 = ${ratios.batch32ThroughputVsUnbatched.toFixed(2)}; ` +
      `maxBatch 1 / livez = ${ratios.unbatchedThroughputVsLivez.toFixed(3)}; daemon CPU per request maxBatch 32 / maxBatch 1 = ${ratios.batch32CpuPerRequestVsUnbatched.toFixed(2)}; ` +
      `p99 at ${rate}/s maxBatch 32 / maxBatch 1 = ${ratios.batch32P99AtFixedRateVsUnbatched.toFixed(2)}.`,
    '',
  ].join('\n');
  writeReport('http', report.date, report, markdown);
}

runBench(main);
