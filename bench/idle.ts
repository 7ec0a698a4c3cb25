// `npm run bench -- idle [--model dir] [--rate 100] [--duration s] [--idle s] [--connections n] [--rounds n] [--baseline dir]`:
// what the daemon spends when it is not busy. Each round starts one daemon per build and measures,
// in turn: the daemon with no traffic (CPU per second and wake-ups of its JS thread), an open-loop
// run at `rate` (bench/open_loop.ts, uniform arrivals) and a closed-loop run at saturation
// (autocannon, `connections`), reading the daemon's own CPU from /proc per thread. The headline is
// CPU per request at the fixed rate over CPU per request at saturation (near 1 when nothing burns
// while idle), and at saturation how much of a core each group of threads takes (the JS thread, the
// batcher and its compute threads, the rest). Last, with the daemons gone, the machine's own toll
// on a pause (bench/peak.cpp idle): one memory-bound task back to back and after each 1/rate
// asleep, the part of the ratio no daemon can avoid. `--baseline` names another checkout's root (its own
// dist/ and build/, e.g. main built in a temporary directory); its rounds alternate with this
// build's, so both run under the same load from whatever else shares the box.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import autocannon from 'autocannon';

import { projectRoot } from '../src/paths';
import { type Daemon, startDaemon } from './daemon';
import { runOpenLoop } from './open_loop';
import { gitCommit, machineInfo, median, runBench, writeReport } from './report';
import { measureIdlePenalty } from './roofline';
import { benchRequests } from './requests';

const { values: options } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    rate: { type: 'string', default: '100' },
    duration: { type: 'string', default: '10' },
    idle: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    baseline: { type: 'string' },
  },
});

const idlePenaltyBytes = 4 * 2 ** 20;

/** CPU seconds and voluntary context switches (wake-ups after a sleep) of one thread. */
interface ThreadSample {
  name: string;
  cpu: number;
  wakeups: number;
}

// utime + stime are fields 14 and 15 of stat (10 ms ticks); the name is the thread's comm.
function sampleThreads(pid: number): Map<number, ThreadSample> {
  const threads = new Map<number, ThreadSample>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      threads.set(Number(tid), {
        name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
        cpu: (Number(fields[11]) + Number(fields[12])) / 100,
        wakeups: Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0),
      });
    } catch {
      // the thread exited between the listing and the read; its time stays in the process total
    }
  }
  return threads;
}

function processCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The daemon's CPU over one window: the whole process, and per group of threads. */
interface Window {
  seconds: number;
  cpu: number;
  /** Keyed by group: `js` (the main thread), then each thread name (several threads may share one). */
  groups: Record<string, { cpu: number; wakeups: number; threads: number }>;
}

async function measureWindow(pid: number, run: () => Promise<void>): Promise<Window> {
  const threadsBefore = sampleThreads(pid);
  const cpuBefore = processCpu(pid);
  const start = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = processCpu(pid) - cpuBefore;
  const groups: Window['groups'] = {};
  for (const [tid, after] of sampleThreads(pid)) {
    const before = threadsBefore.get(tid) ?? { cpu: 0, wakeups: 0 };
    const group = tid === pid ? 'js' : after.name;
    const into = (groups[group] ??= { cpu: 0, wakeups: 0, threads: 0 });
    into.cpu += after.cpu - before.cpu;
    into.wakeups += after.wakeups - before.wakeups;
    into.threads++;
  }
  return { seconds, cpu, groups };
}

interface Trial {
  build: string;
  round: number;
  idle: Window;
  fixedRate: Window & { answered: number; p99Ms: number };
  saturation: Window & { answered: number; requestsPerSecond: number };
}

async function runTrial(build: string, root: string, round: number, bodies: Buffer[]): Promise<Trial> {
  const daemon: Daemon = await startDaemon({ ADSERVE_MODEL_DIR: path.resolve(projectRoot, options.model!) }, { root });
  try {
    const pid = daemon.child.pid!;
    const closedLoop = (duration: number) => {
      let next = 0;
      return autocannon({
        url: daemon.url,
        connections: Number(options.connections),
        duration,
        requests: [
          {
            method: 'POST',
            path: '/v1/ads',
            headers: { 'content-type': 'application/x-flatbuffers' },
            setupRequest: (request: autocannon.Request) => ({ ...request, body: bodies[next++ % bodies.length] }),
          },
        ],
      });
    };
    const openLoop = (durationSeconds: number) =>
      runOpenLoop({
        host: '127.0.0.1',
        port: daemon.port,
        path: '/v1/ads',
        bodies,
        contentType: 'application/x-flatbuffers',
        rate: Number(options.rate),
        durationSeconds,
        initialConnections: Number(options.connections),
        maxConnections: 512,
      });
    await closedLoop(2); // warm-up, not recorded
    await new Promise((settle) => setTimeout(settle, 1000));
    const idle = await measureWindow(pid, () => new Promise((settle) => setTimeout(settle, Number(options.idle) * 1000)));
    let fixed: Awaited<ReturnType<typeof openLoop>> | undefined;
    const fixedWindow = await measureWindow(pid, async () => {
      fixed = await openLoop(Number(options.duration));
    });
    let closed: autocannon.Result | undefined;
    const closedWindow = await measureWindow(pid, async () => {
      closed = await closedLoop(Number(options.duration));
    });
    return {
      build,
      round,
      idle,
      fixedRate: { ...fixedWindow, answered: fixed!.ok + fixed!.non2xx, p99Ms: fixed!.latencyMs.p99 },
      saturation: { ...closedWindow, answered: closed!.requests.total, requestsPerSecond: closed!.requests.average },
    };
  } finally {
    await daemon.stop();
  }
}

async function main(): Promise<void> {
  const bodies = benchRequests(2000);
  const builds: [string, string][] = [['this build', projectRoot]];
  if (options.baseline) builds.push([`baseline (${options.baseline})`, path.resolve(options.baseline)]);
  const trials: Trial[] = [];
  for (let round = 1; round <= Number(options.rounds); round++) {
    // Alternate which build goes first, so neither always runs on the box's quieter or busier half.
    const order = round % 2 === 1 ? builds : [...builds].reverse();
    for (const [build, root] of order) {
      const trial = await runTrial(build, root, round, bodies);
      const perRequest = (window: Window & { answered: number }) => (window.cpu * 1e6) / Math.max(1, window.answered);
      process.stdout.write(
        `${build} round ${round}: idle ${((trial.idle.cpu * 1e3) / trial.idle.seconds).toFixed(1)} ms/s, ` +
          `@${options.rate}/s ${perRequest(trial.fixedRate).toFixed(0)} µs/req, saturation ${perRequest(trial.saturation).toFixed(0)} µs/req ` +
          `at ${trial.saturation.requestsPerSecond.toFixed(0)} req/s\n`,
      );
      trials.push(trial);
    }
  }
  const groupNames = [...new Set(trials.flatMap((t) => Object.keys(t.saturation.groups)))].sort((a, b) =>
    a === 'js' ? -1 : b === 'js' ? 1 : a.localeCompare(b),
  );
  const summary = builds.map(([build]) => {
    const own = trials.filter((t) => t.build === build);
    const perRequest = (window: Window & { answered: number }) => (window.cpu * 1e6) / Math.max(1, window.answered);
    const fixedRate = own.map((t) => perRequest(t.fixedRate));
    const saturation = own.map((t) => perRequest(t.saturation));
    return {
      build,
      idleCpuMsPerSecond: median(own.map((t) => (t.idle.cpu * 1e3) / t.idle.seconds)),
      idleJsWakeupsPerSecond: median(own.map((t) => (t.idle.groups.js?.wakeups ?? 0) / t.idle.seconds)),
      fixedRateCpuMicrosPerRequest: median(fixedRate),
      fixedRateCpuRange: [Math.min(...fixedRate), Math.max(...fixedRate)],
      fixedRateP99Ms: median(own.map((t) => t.fixedRate.p99Ms)),
      saturationCpuMicrosPerRequest: median(saturation),
      saturationCpuRange: [Math.min(...saturation), Math.max(...saturation)],
      saturationRequestsPerSecond: median(own.map((t) => t.saturation.requestsPerSecond)),
      fixedRateVsSaturation: median(own.map((t) => perRequest(t.fixedRate) / perRequest(t.saturation))),
      // Share of one core each group of threads took at saturation.
      saturationCores: Object.fromEntries(
        groupNames.map((group) => [group, median(own.map((t) => (t.saturation.groups[group]?.cpu ?? 0) / t.saturation.seconds))]),
      ),
      saturationCoresTotal: median(own.map((t) => t.saturation.cpu / t.saturation.seconds)),
    };
  });
  // Measured after the daemons, with nothing else of this run on the box.
  const penalty = measureIdlePenalty(idlePenaltyBytes, 1e6 / Number(options.rate));
  const commit = gitCommit();
  const machine = machineInfo();
  const date = new Date().toISOString();
  const report = { date, commit, machine, options, summary, idlePenalty: penalty, trials };
  const f0 = (value: number): string => value.toFixed(0);
  const f2 = (value: number): string => value.toFixed(2);
  const markdown = [
    `# Idle cost and core use, ${date}`,
    '',
    `commit ${commit}; model ${options.model}; ${machine.cpu} x${machine.cores}; Node ${machine.node}; per round and build one fresh daemon: 2 s closed-loop warm-up, ${options.idle} s with no traffic, ${options.duration} s open loop at ${options.rate} req/s (uniform arrivals), ${options.duration} s closed loop (autocannon, ${options.connections} connections); ${options.rounds} rounds, builds alternating, medians shown (ranges: min-max over rounds). The load generators and other jobs share the box, so compare CPU per request, not req/s.`,
    '',
    "CPU is user + system time from /proc (10 ms ticks): the whole daemon process, and per thread; 'js' is the main thread, the other groups are thread names (the engine names its threads; OpenMP workers take the name of the thread that started them).",
    '',
    `| build | idle CPU ms/s | JS thread wake-ups/s idle | CPU µs/req @${options.rate}/s | CPU µs/req at saturation | ratio | req/s at saturation | p99 ms @${options.rate}/s |`,
    '|---|---|---|---|---|---|---|---|',
    ...summary.map(
      (s) =>
        `| ${s.build} | ${s.idleCpuMsPerSecond.toFixed(1)} | ${f0(s.idleJsWakeupsPerSecond)} | **${f0(s.fixedRateCpuMicrosPerRequest)}** (${s.fixedRateCpuRange.map(f0).join('-')}) | ` +
        `**${f0(s.saturationCpuMicrosPerRequest)}** (${s.saturationCpuRange.map(f0).join('-')}) | ${f2(s.fixedRateVsSaturation)} | ${f0(s.saturationRequestsPerSecond)} | ${f2(s.fixedRateP99Ms)} |`,
    ),
    '',
    `The machine's own toll on a pause (bench/peak.cpp idle, this run): one task touching ${(penalty.bytes / 2 ** 20).toFixed(0)} MiB (a pass over it and 16K random reads, about what one request touches of the index and fusion tables) took ${penalty.backToBackMicros.toFixed(0)} µs of CPU back to back and ${penalty.afterSleepMicros.toFixed(0)} µs after each ${f0(penalty.sleepMicros / 1000)} ms asleep (the gap between requests at ${options.rate}/s): ${f2(penalty.afterSleepMicros / penalty.backToBackMicros)}×, with no daemon involved. Caches and TLBs a pause leaves cold make that much of the ratio above, whatever the daemon does.`,
    '',
    '## Cores taken at saturation, by thread group',
    '',
    `| build | ${groupNames.join(' | ')} | whole process |`,
    `|---|${groupNames.map(() => '---').join('|')}|---|`,
    ...summary.map((s) => `| ${s.build} | ${groupNames.map((group) => f2(s.saturationCores[group]!)).join(' | ')} | ${f2(s.saturationCoresTotal)} |`),
    '',
  ].join('\n');
  writeReport('idle', date, report, markdown);
}

runBench(main);
