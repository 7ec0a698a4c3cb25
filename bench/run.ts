// `npm run bench -- [--duration s] [--connections n] [--rate r]`: drives the real daemon with
// autocannon and writes JSON + Markdown to bench/results/. Every ad-path number is reported next to
// a baseline measured in the same run (GET /livez: uWebSockets.js and Node with no protocol work),
// trials interleaved, each on a fresh daemon process.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import autocannon from 'autocannon';

import { projectRoot } from '../src/paths';
import { decodeAdResponse, encodeAdRequest } from '../src/protocol/encode_request';
import { Placement, ResponseStatus } from '../src/protocol/schema';
import { startDaemon } from './daemon';

interface Scenario {
  name: string;
  /** Request body per call; absent for GET. */
  bodies?: Buffer[];
  path: string;
  /** Fixed offered load in requests/s; absent for a closed loop. */
  rate?: number;
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
}

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    rate: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '2' },
  },
});

const queries = ['running shoes', 'usb c cable', 'organic coffee beans', 'kids rain boots', '4k tv 55 inch', 'dog food grain free'];
const placements = [Placement.Search, Placement.ProductPage, Placement.Category, Placement.Homepage, Placement.Cart];

// Many distinct bodies, so nothing downstream can serve a cached answer.
function adRequestBodies(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) =>
    Buffer.from(
      encodeAdRequest({
        id: `bench-${i}`,
        placement: placements[i % placements.length],
        query: i % placements.length === 0 ? queries[i % queries.length] : undefined,
        userId: `user-${(i * 7919) % 5000}`,
        slots: 1 + (i % 4),
      }),
    ),
  );
}

function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

async function checkAdResponses(url: string, bodies: Buffer[]): Promise<void> {
  for (const body of bodies.slice(0, 20)) {
    const response = await fetch(`${url}/v1/ads`, { method: 'POST', headers: { 'Content-Type': 'application/x-flatbuffers' }, body });
    const decoded = decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
    if (response.status !== 200 || decoded.status() !== ResponseStatus.NoEngine) throw new Error(`unexpected answer ${response.status}`);
  }
}

async function runTrial(scenario: Scenario, round: number): Promise<Trial> {
  const daemon = await startDaemon();
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
    const result = await autocannon(common);
    const cpuSeconds = processCpuSeconds(daemon.child.pid!) - cpuBefore;
    return {
      scenario: scenario.name,
      round,
      requestsPerSecond: result.requests.average,
      latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p999: result.latency.p99_9, mean: result.latency.average },
      requests: result.requests.total,
      errors: result.errors + result.timeouts,
      non2xx: result.non2xx,
      cpuMicrosPerRequest: (cpuSeconds * 1e6) / Math.max(1, result.requests.total),
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
  const bodies = adRequestBodies(2000);
  const rate = Number(options.rate);
  const scenarios: Scenario[] = [
    { name: 'livez (baseline)', path: '/livez' },
    { name: 'ads', path: '/v1/ads', bodies },
    { name: `livez @${rate}/s (baseline)`, path: '/livez', rate },
    { name: `ads @${rate}/s`, path: '/v1/ads', bodies, rate },
  ];
  const trials: Trial[] = [];
  for (let round = 1; round <= Number(options.rounds); round++) {
    for (const scenario of scenarios) {
      const trial = await runTrial(scenario, round);
      process.stdout.write(`${trial.scenario} round ${round}: ${trial.requestsPerSecond.toFixed(0)} req/s, p99 ${trial.latencyMs.p99} ms\n`);
      trials.push(trial);
    }
  }
  const summary = scenarios.map((scenario) => {
    const own = trials.filter((t) => t.scenario === scenario.name);
    return {
      scenario: scenario.name,
      requestsPerSecond: median(own.map((t) => t.requestsPerSecond)),
      p50Ms: median(own.map((t) => t.latencyMs.p50)),
      p99Ms: median(own.map((t) => t.latencyMs.p99)),
      cpuMicrosPerRequest: median(own.map((t) => t.cpuMicrosPerRequest)),
      errors: own.reduce((sum, t) => sum + t.errors + t.non2xx, 0),
    };
  });
  const [livez, ads, livezFixed, adsFixed] = summary as [typeof summary[0], typeof summary[0], typeof summary[0], typeof summary[0]];
  const ratios = {
    adsThroughputVsLivez: ads.requestsPerSecond / livez.requestsPerSecond,
    adsCpuPerRequestVsLivez: ads.cpuMicrosPerRequest / livez.cpuMicrosPerRequest,
    adsP99AtFixedRateVsLivez: adsFixed.p99Ms / Math.max(livezFixed.p99Ms, 1),
  };
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: projectRoot, encoding: 'utf8' }).trim();
  const machine = { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` };
  const report = { date: new Date().toISOString(), commit, machine, options, summary, ratios, trials };
  const dir = path.join(projectRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = path.join(dir, `transport-${report.date.replace(/[:.]/g, '-')}`);
  writeFileSync(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`);
  const rows = summary.map((s) => `| ${s.scenario} | ${s.requestsPerSecond.toFixed(0)} | ${s.p50Ms} | ${s.p99Ms} | ${s.cpuMicrosPerRequest.toFixed(1)} | ${s.errors} |`);
  const markdown = [
    `# Transport benchmark, ${report.date}`,
    '',
    `commit ${commit}; ${machine.cpu} x${machine.cores}, ${machine.memoryGiB} GiB; Node ${machine.node}; ${options.connections} connections, ${options.duration} s per trial, ${options.rounds} interleaved rounds, medians shown; autocannon in the same box as the daemon.`,
    '',
    '| scenario | req/s | p50 ms | p99 ms | daemon CPU µs/req | errors |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `Ratios (ads vs the /livez baseline of the same run): throughput ${ratios.adsThroughputVsLivez.toFixed(2)}, CPU per request ${ratios.adsCpuPerRequestVsLivez.toFixed(2)}, p99 at ${rate}/s ${ratios.adsP99AtFixedRateVsLivez.toFixed(2)}.`,
    '',
  ].join('\n');
  writeFileSync(`${stem}.md`, markdown);
  process.stdout.write(`${markdown}\nwrote ${stem}.json and .md\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
