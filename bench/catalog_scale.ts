// `npm run bench -- catalog-scale [--model dir] [--env K=V,...] [--restarts n] [--duration s] [--connections n]`:
// how a catalog's size shows at start and under load. One daemon data directory: the first start
// seeds a new catalog store from the model's catalog.jsonl and reads it whole; each restart reads
// the replica's catalog snapshot (the first may find the model's files no longer in the page
// cache, the later ones find them there); then a closed loop of `duration` seconds (autocannon,
// `connections`) on the last restarted daemon. Reports each start's seconds to ready and its stages
// (from the daemon's own log), the RSS after each start and after the load, and req/s with the
// daemon's CPU per request.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import autocannon from 'autocannon';

import { projectRoot } from '../src/paths';
import { type Daemon, startDaemon } from './daemon';
import { daemonCpu } from './daemon_cost';
import { benchTempDir, gitCommit, machineInfo, runBench, writeReport } from './report';
import { benchRequests } from './requests';

const { values: options } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    env: { type: 'string', default: '' },
    duration: { type: 'string', default: '30' },
    connections: { type: 'string', default: '16' },
    restarts: { type: 'string', default: '2' },
  },
});

interface Start {
  seconds: number;
  rssMiB: number;
  /** Seconds into the start at which each stage began, as the daemon logged them. */
  stages: Record<string, number>;
  /** The daemon's own timings of the catalog steps it logs. */
  logged: Record<string, number>;
}

/** The daemon's log lines with timings, and what their `seconds` measure. */
const loggedSteps: Record<string, string> = {
  'catalog store seeded': 'seeding took',
  'catalog read from the store': 'reading the catalog took',
  'engine ready': 'model loaded after',
};

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

function startOf(daemon: Daemon, seconds: number): Start {
  const stages: Record<string, number> = {};
  const logged: Record<string, number> = {};
  for (const line of daemon.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg: string; stage?: string; seconds?: number };
    if (entry.msg === 'loading' && entry.stage !== undefined && stages[entry.stage] === undefined) stages[entry.stage] = entry.seconds ?? 0;
    const label = loggedSteps[entry.msg];
    if (label !== undefined && entry.seconds !== undefined) logged[label] = entry.seconds;
  }
  return { seconds, rssMiB: rssMiB(daemon.child.pid!), stages, logged };
}

async function timedStart(env: Record<string, string>): Promise<{ daemon: Daemon; start: Start }> {
  const started = performance.now();
  const daemon = await startDaemon(env, { startTimeoutMs: 3 * 3600_000 });
  return { daemon, start: startOf(daemon, (performance.now() - started) / 1000) };
}

async function main(): Promise<void> {
  const date = new Date().toISOString();
  const extra = Object.fromEntries(
    options
      .env!.split(',')
      .filter((pair) => pair !== '')
      .map((pair) => pair.split('=') as [string, string]),
  );
  const env = { ADSERVE_MODEL_DIR: path.resolve(projectRoot, options.model!), ADSERVE_DATA_DIR: benchTempDir('data-'), ...extra };
  const first = await timedStart(env);
  const ads = Number(/"msg":"engine ready".*?"ads":(\d+)/.exec(first.daemon.output())?.[1]);
  // The snapshot is written once the model serves; a restart before it is done would read the store whole again.
  while (!first.daemon.output().includes('"msg":"catalog snapshot written"')) await new Promise((resolve) => setTimeout(resolve, 200));
  await first.daemon.stop();
  const restarts: Start[] = [];
  let second = await timedStart(env);
  restarts.push(second.start);
  while (restarts.length < Number(options.restarts)) {
    await second.daemon.stop();
    second = await timedStart(env);
    restarts.push(second.start);
  }
  const bodies = benchRequests(2000);
  const pid = second.daemon.child.pid!;
  const cpuBefore = daemonCpu(pid);
  let next = 0;
  const result = await autocannon({
    url: `${second.daemon.url}/v1/ads`,
    method: 'POST',
    headers: { 'content-type': 'application/x-flatbuffers' },
    connections: Number(options.connections),
    duration: Number(options.duration),
    requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, body: bodies[next++ % bodies.length] }) }],
  });
  const cpu = daemonCpu(pid).total - cpuBefore.total;
  const load = {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    cpuMicrosPerRequest: (cpu / result.requests.total) * 1e6,
    rssMiB: rssMiB(pid),
  };
  await second.daemon.stop();
  const report = { date, commit: gitCommit(), machine: machineInfo(), options, ads, first: first.start, restarts, load };
  const row = (name: string, start: Start) =>
    `| ${name} | ${start.seconds.toFixed(1)} | ${Object.entries(start.logged)
      .map(([step, seconds]) => `${step} ${seconds.toFixed(1)} s`)
      .join('; ')} | ${(start.rssMiB / 1024).toFixed(2)} |`;
  const markdown = [
    `# Catalog scale: ${ads.toLocaleString('en-US')} ads`,
    '',
    `${date}, commit ${report.commit}; model ${options.model}; ${report.machine.cpu} x${report.machine.cores}, ${report.machine.memoryGiB} GiB; extra settings: ${options.env === '' ? 'none' : options.env}.`,
    '',
    '| start | seconds to ready | logged by the daemon | RSS GiB |',
    '|---|---|---|---|',
    row('first (new store: seed, whole read)', first.start),
    ...restarts.map((start, i) => row(`restart ${i + 1} (catalog snapshot)`, start)),
    '',
    `Closed loop after the restart, ${options.connections} connections for ${options.duration} s over 2000 distinct requests: ${load.requestsPerSecond.toFixed(0)} req/s, p50 ${load.p50Ms} ms, p99 ${load.p99Ms} ms, ${load.non2xx} non-2xx, ${load.errors} errors; daemon CPU ${load.cpuMicrosPerRequest.toFixed(0)} µs per request; RSS after the load ${(load.rssMiB / 1024).toFixed(2)} GiB.`,
    '',
  ].join('\n');
  writeReport('catalog-scale', date, report, markdown);
}

runBench(main);
