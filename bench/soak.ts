// `npm run bench -- soak [--model dir] [--events n] [--max-minutes m] [--event-connections n] [--probe-rate r] [--cap-window-seconds s]
//   [--paced-rate r] [--paced-windows n] [--window-seconds s]`:
// millions of events through the local ledger of a real daemon while ads are served. Tokens come
// from real ad responses; each served ad gets its impression, click and conversion over
// POST /v1/events. Tokens live 20 s and the attribution window is 20 s, so the ledger forgets ids
// and served ads all through the soak.
//
// Two phases. The flood sends events as fast as the connections go, which on a small box takes
// every core: it shows RSS, snapshot behaviour and recovery under the most events per hour, but its
// ad latency measures CPU competition with the events themselves. The paced phase then alternates
// windows with events at a fixed rate (default 1,000/s, arrivals spread evenly) and windows without
// any, with the same ad traffic in both, so the ad latency of event windows, of the seconds a
// snapshot is being written, and of two interleaved halves of the quiet windows (the noise pair)
// compare like with like. Reported: RSS after warm-up and at the end, each snapshot's turns on the
// event loop (from its log line: the longest, and those over 5 ms, in wall time and on a CPU) per phase, the longest event-loop stall per
// second from any cause (nodejs_eventloop_lag_max_seconds), the probe's ad latency per kind of
// second, and after kill -9 and a restart, the recovered spend against what was acknowledged and
// how long recovery took.
import { cpSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { readCatalogFile, writeCatalogFile } from '../src/catalog/catalog_file';
import { rehashManifestFile } from '../src/engine/model_dir';
import type { TurnTimes } from '../src/money/ledger_snapshot';
import { projectRoot } from '../src/paths';
import { decodeAdResponse } from '../src/protocol/encode_request';
import { type Daemon, startDaemon } from './daemon';
import { benchTempDir, gitCommit, machineInfo, runBench, writeReport } from './report';
import { benchRequests } from './requests';

const { values: options } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    events: { type: 'string', default: '5000000' },
    'max-minutes': { type: 'string', default: '60' },
    'event-connections': { type: 'string', default: '64' },
    'probe-rate': { type: 'string', default: '50' },
    'baseline-seconds': { type: 'string', default: '30' },
    // Frequency caps keep each user's impressions for their window; a short one lets that history expire within the soak too.
    'cap-window-seconds': { type: 'string' },
    'paced-rate': { type: 'string', default: '1000' },
    'paced-windows': { type: 'string', default: '6' },
    'window-seconds': { type: 'string', default: '20' },
    // Often enough that the paced phase's event windows each see about one.
    'snapshot-events': { type: 'string', default: '20000' },
  },
});
const targetEvents = Number(options.events);
const probeRate = Number(options['probe-rate']);
const tokenTtlSeconds = 20;
const adminToken = 'soak-admin';
/**
 * A copy of the model directory whose campaigns have no budgets and spend as fast as traffic
 * allows (budgets spent within minutes would leave no ads to send events for), and whose capped
 * campaigns have the given cap window.
 */
function modelDir(): string {
  const copy = benchTempDir('model-');
  cpSync(path.resolve(projectRoot, options.model), copy, { recursive: true });
  const catalogPath = path.join(copy, 'catalog.jsonl');
  const catalog = readCatalogFile(catalogPath);
  for (const campaign of catalog.campaigns) {
    campaign.daily_budget_micros = 0;
    delete campaign.lifetime_budget_micros;
    campaign.pacing = 'asap';
    if (campaign.frequency_cap && options['cap-window-seconds'] !== undefined) campaign.frequency_cap.window_seconds = Number(options['cap-window-seconds']);
  }
  writeCatalogFile(catalogPath, catalog);
  rehashManifestFile(copy, 'catalog.jsonl');
  return copy;
}

const env = {
  ADSERVE_MODEL_DIR: modelDir(),
  ADSERVE_EVENT_TOKEN_KEY: 'soak-token-key-0123456789abcdef0123',
  ADSERVE_ADMIN_TOKEN: adminToken,
  ADSERVE_EVENT_TOKEN_TTL_SECONDS: String(tokenTtlSeconds),
  ADSERVE_ATTRIBUTION_WINDOW_SECONDS: '20',
  ADSERVE_LEDGER_SNAPSHOT_EVENTS: options['snapshot-events'],
  // The per-second stall maximum must see stalls of a few milliseconds, which the default sampling interval misses most of.
  ADSERVE_EVENT_LOOP_LAG_RESOLUTION_MS: '1',
};

// Idle sockets are closed well before the daemon's 10 s idle timeout, which would otherwise reset one just as it is reused.
const agent = new http.Agent({ keepAlive: true, timeout: 4_000, maxSockets: Number(options['event-connections']) + 16 });

function post(url: string, route: string, body: Buffer, contentType: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${url}${route}`,
      { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': body.length } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const requests = benchRequests(4_096, 7, 4);
let requestIndex = 0;

/** One ad request; its event tokens. */
async function serveAds(url: string): Promise<{ latencyMs: number; tokens: string[] }> {
  const started = performance.now();
  const response = await post(url, '/v1/ads', requests[requestIndex++ % requests.length]!, 'application/x-flatbuffers');
  const latencyMs = performance.now() - started;
  if (response.status !== 200) throw new Error(`ad request answered ${response.status}`);
  const ad = decodeAdResponse(new Uint8Array(response.body));
  return { latencyMs, tokens: Array.from({ length: ad.adsLength() }, (_, i) => ad.ads(i)!.eventToken()!) };
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const summary = (latencies: number[]) => {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { count: sorted.length, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.at(-1) ?? NaN };
};
const maxOf = (values: number[]): number => values.reduce((a, b) => Math.max(a, b), 0);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function lagMaxMs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^nodejs_eventloop_lag_max_seconds ([0-9.e+-]+)$/m.exec(text)?.[1] ?? NaN) * 1000;
}

// Sums of nanos pass 2^53 within minutes at the soak's rate, so they are BigInt: a float sum drifts by a few nanos.
async function spendOf(url: string): Promise<{ events: number; lifetimeNanos: bigint }> {
  const spend = (await (await fetch(`${url}/v1/admin/spend`, { headers: { authorization: `Bearer ${adminToken}` } })).json()) as {
    events: number;
    campaigns: Record<string, { lifetimeMicros: number }>;
  };
  return { events: spend.events, lifetimeNanos: Object.values(spend.campaigns).reduce((sum, c) => sum + BigInt(Math.round(c.lifetimeMicros * 1000)), 0n) };
}

/** Something due at a fixed rate: `act(i)` is started at start + i / rate whether or not earlier ones finished, while `running()`. */
async function atFixedRate(rate: number, running: () => boolean, act: (i: number) => Promise<void>): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  const start = performance.now();
  for (let i = 0; running(); i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
    const acting = act(i).finally(() => inFlight.delete(acting));
    inFlight.add(acting);
  }
  await Promise.all(inFlight);
}

interface ProbeSample {
  /** Wall clock (ms) when the request was sent, to place it against the daemon's log times. */
  sentMs: number;
  latencyMs: number;
}

let probeErrors = 0;

/** Ad requests at a fixed rate (open loop), latencies collected while `running()`. */
async function probe(url: string, running: () => boolean): Promise<ProbeSample[]> {
  const samples: ProbeSample[] = [];
  await atFixedRate(probeRate, running, async () => {
    const sentMs = Date.now();
    await serveAds(url).then(
      ({ latencyMs }) => void samples.push({ sentMs, latencyMs }),
      () => void probeErrors++,
    );
  });
  return samples;
}

interface Snapshot {
  startMs: number;
  endMs: number;
  events: number;
  ids: number;
  seconds: number;
  turns: TurnTimes;
}

/** The snapshots the daemon logged, with the wall-clock span each was being written. */
function snapshotsOf(daemon: Daemon): Snapshot[] {
  return [...daemon.output().matchAll(/^.*"msg":"spend ledger snapshot".*$/gm)].map((line) => {
    const logged = JSON.parse(line[0]) as { time: string; events: number; ids: number; seconds: number; turns: TurnTimes };
    const endMs = Date.parse(logged.time);
    return {
      startMs: endMs - logged.seconds * 1000,
      endMs,
      events: logged.events,
      ids: logged.ids,
      seconds: logged.seconds,
      turns: logged.turns,
    };
  });
}

const overlapsAny = (fromMs: number, toMs: number, spans: Array<{ startMs: number; endMs: number }>): boolean =>
  spans.some((span) => fromMs <= span.endMs && toMs >= span.startMs);

/** Events sent, acknowledged and refused, with the tokens harvested from ad responses waiting for theirs. */
class EventTraffic {
  readonly queue: Array<{ token: string; issuedMs: number }> = [];
  acknowledgedEvents = 0;
  acknowledgedNanos = 0n;
  transportErrors = 0;
  ambiguous = 0;
  readonly refused = new Map<number, number>();
  responsesHarvested = 0;
  tokensHarvested = 0;
  private eventSeq = 0;

  constructor(private readonly url: string) {}

  /** Ad requests that feed the queue, kept at most `cap` long by dropping the oldest tokens. */
  async harvest(cap = 2_000): Promise<void> {
    const answer = await serveAds(this.url).catch(() => undefined);
    if (!answer) {
      this.transportErrors++;
      return;
    }
    const issuedMs = Date.now();
    this.responsesHarvested++;
    this.tokensHarvested += answer.tokens.length;
    for (const token of answer.tokens) this.queue.push({ token, issuedMs });
    if (this.queue.length > cap) this.queue.splice(0, this.queue.length - cap);
  }

  /** The next token young enough for its three events, if any. */
  nextServed(): string | undefined {
    for (let served = this.queue.shift(); served; served = this.queue.shift()) {
      // Tokens that would expire mid-sequence are skipped rather than refused.
      if (Date.now() - served.issuedMs <= (tokenTtlSeconds * 1000) / 2) return served.token;
    }
    return undefined;
  }

  /** Impression, click and conversion for one served ad, in order. */
  async sendAll(token: string): Promise<void> {
    for (const type of ['impression', 'click', 'conversion']) {
      const body = Buffer.from(JSON.stringify({ event_id: `soak-${this.eventSeq++}`, type, token }));
      let response = await post(this.url, '/v1/events', body, 'application/json').catch(() => undefined);
      // A connection lost mid-request: the same event id again, so it is recorded once either way.
      for (let retry = 0; !response && retry < 3; retry++) {
        this.transportErrors++;
        response = await post(this.url, '/v1/events', body, 'application/json').catch(() => undefined);
        if (response?.status === 409) this.ambiguous++; // recorded by the lost attempt, at a charge not seen here
      }
      if (!response) throw new Error('events: the daemon stopped answering');
      if (response.status !== 200) {
        this.refused.set(response.status, (this.refused.get(response.status) ?? 0) + 1);
        return;
      }
      this.acknowledgedEvents++;
      this.acknowledgedNanos += BigInt(Math.round((JSON.parse(response.body.toString()) as { chargedMicros: number }).chargedMicros * 1000));
    }
  }
}

interface Second {
  t: number;
  wallMs: number;
  events: number;
  lagMaxMs: number;
  rssMiB: number;
}

/** Per second: events acknowledged, the daemon's longest event-loop stall, RSS; until `stop()`. */
function sampleSeconds(daemon: Daemon, traffic: EventTraffic): { seconds: Second[]; stop: () => Promise<void> } {
  const seconds: Second[] = [];
  let sampling = true;
  const sampler = (async () => {
    const started = Date.now();
    await lagMaxMs(daemon.url); // resets the maximum
    while (sampling) {
      await sleep(1000);
      seconds.push({
        t: (Date.now() - started) / 1000,
        wallMs: Date.now(),
        events: traffic.acknowledgedEvents,
        lagMaxMs: await lagMaxMs(daemon.url),
        rssMiB: rssMiB(daemon.child.pid!),
      });
    }
  })();
  return {
    seconds,
    stop: async () => {
      sampling = false;
      await sampler;
    },
  };
}

/** Events as fast as the connections go until `targetEvents` are acknowledged, with the probe at its rate. */
async function flood(daemon: Daemon, traffic: EventTraffic) {
  let sending = true;
  const harvester = async (): Promise<void> => {
    while (sending) {
      if (traffic.queue.length > 2_000) await sleep(5);
      else await traffic.harvest();
    }
  };
  const sender = async (): Promise<void> => {
    while (sending && traffic.acknowledgedEvents < targetEvents) {
      const token = traffic.nextServed();
      if (token) await traffic.sendAll(token);
      else await sleep(2);
    }
  };
  const workers = [harvester(), harvester(), ...Array.from({ length: Number(options['event-connections']) }, sender)];
  const before = traffic.acknowledgedEvents;
  const startMs = Date.now();
  const deadline = startMs + Number(options['max-minutes']) * 60_000;
  let warmRss = NaN;
  const latencies = await probe(daemon.url, () => {
    if (Number.isNaN(warmRss) && Date.now() - startMs > 60_000) warmRss = rssMiB(daemon.child.pid!);
    sending = traffic.acknowledgedEvents < targetEvents && Date.now() <= deadline;
    return sending;
  });
  await Promise.all(workers);
  const endMs = Date.now();
  return { latencies, seconds: (endMs - startMs) / 1000, warmRss, startMs, endMs, acknowledged: traffic.acknowledgedEvents - before };
}

interface Window {
  withEvents: boolean;
  startMs: number;
  endMs: number;
  eventsAcknowledged: number;
}

/**
 * Alternating windows, events at `paced-rate` in every other one; the probe and the token harvest
 * (ad requests at a fixed rate, enough for the event rate) run the same in all of them.
 */
async function pacedPhase(daemon: Daemon, traffic: EventTraffic, tokensPerResponse: number): Promise<{ windows: Window[]; latencies: ProbeSample[] }> {
  const eventRate = Number(options['paced-rate']);
  const windowMs = Number(options['window-seconds']) * 1000;
  const windows: Window[] = [];
  let running = true;
  let eventsOn = false;
  const harvestRate = Math.ceil(((eventRate / 3) * 1.5) / Math.max(1, tokensPerResponse));
  const harvesting = atFixedRate(
    harvestRate,
    () => running,
    () => traffic.harvest(),
  );
  const sending = atFixedRate(
    eventRate / 3,
    () => running,
    async () => {
      const token = eventsOn ? traffic.nextServed() : undefined;
      if (token) await traffic.sendAll(token);
    },
  );
  const probing = probe(daemon.url, () => running);
  for (let i = 0; i < 2 * Number(options['paced-windows']); i++) {
    eventsOn = i % 2 === 1;
    const before = traffic.acknowledgedEvents;
    const startMs = Date.now();
    await sleep(windowMs);
    windows.push({ withEvents: eventsOn, startMs, endMs: Date.now(), eventsAcknowledged: traffic.acknowledgedEvents - before });
  }
  running = false;
  const [latencies] = await Promise.all([probing, harvesting, sending]);
  return { windows, latencies };
}

/** kill -9, then a fresh daemon on the same data directory: what it recovered, and how soon it listened. */
async function killAndRecover(daemon: Daemon) {
  daemon.child.kill('SIGKILL');
  await daemon.stop();
  const restartStarted = Date.now();
  const restarted = await startDaemon({ ...env, ADSERVE_DATA_DIR: daemon.dataDir });
  const listeningSeconds = (Date.now() - restartStarted) / 1000;
  const recoveredLine = /"msg":"spend ledger".*$/m.exec(restarted.output())?.[0] ?? '';
  const recovered = await spendOf(restarted.url);
  await restarted.stop();
  return { recovered, listeningSeconds, recoveredLine };
}

const inSpan = (samples: ProbeSample[], span: { startMs: number; endMs: number }): ProbeSample[] =>
  samples.filter((sample) => sample.sentMs >= span.startMs && sample.sentMs < span.endMs);

/** The paced phase's probe latencies by kind of second: quiet, with events, and within those, while a snapshot was written. */
function pacedLatency(windows: Window[], latencies: ProbeSample[], snapshots: Snapshot[]) {
  const quiet = windows.filter((window) => !window.withEvents);
  const busy = windows.filter((window) => window.withEvents);
  const of = (picked: Window[]) => picked.flatMap((window) => inSpan(latencies, window));
  const busySamples = of(busy);
  // A snapshot at the paced rate is written in tens of milliseconds, a couple of probe requests: the second around it is what is compared.
  const duringSnapshot = (sample: ProbeSample) => overlapsAny(sample.sentMs - 500, sample.sentMs + 500, snapshots);
  return {
    quiet: summary(of(quiet).map((sample) => sample.latencyMs)),
    quietOddWindows: summary(of(quiet.filter((_, i) => i % 2 === 1)).map((sample) => sample.latencyMs)),
    quietEvenWindows: summary(of(quiet.filter((_, i) => i % 2 === 0)).map((sample) => sample.latencyMs)),
    withEvents: summary(busySamples.map((sample) => sample.latencyMs)),
    withEventsNoSnapshot: summary(busySamples.filter((sample) => !duringSnapshot(sample)).map((sample) => sample.latencyMs)),
    withEventsDuringSnapshot: summary(busySamples.filter(duringSnapshot).map((sample) => sample.latencyMs)),
  };
}

async function main(): Promise<void> {
  const date = new Date().toISOString();
  const daemon = await startDaemon(env);
  const pid = daemon.child.pid!;
  const traffic = new EventTraffic(daemon.url);
  const sampler = sampleSeconds(daemon, traffic);

  // Baseline: the probe alone, no events.
  const baselineEnd = Date.now() + Number(options['baseline-seconds']) * 1000;
  const baseline = await probe(daemon.url, () => Date.now() < baselineEnd);
  const baselineSamples = sampler.seconds.length;
  const floodRun = await flood(daemon, traffic);
  const floodEndRss = rssMiB(pid);
  // The flood's own ad responses say how many tokens one brings, which sizes the paced phase's harvest.
  const paced = await pacedPhase(daemon, traffic, traffic.tokensHarvested / Math.max(1, traffic.responsesHarvested));
  await sampler.stop();
  const endRss = rssMiB(pid);
  const beforeKill = await spendOf(daemon.url);
  const snapshots = snapshotsOf(daemon);
  const recovery = await killAndRecover(daemon);
  const report = reportOf({
    date,
    baseline,
    baselineSamples,
    traffic,
    floodRun,
    floodEndRss,
    paced,
    endRss,
    beforeKill,
    snapshots,
    recovery,
    seconds: sampler.seconds,
  });
  writeReport('soak', date, report, markdownOf(report));
  agent.destroy();
}

interface Run {
  date: string;
  baseline: ProbeSample[];
  baselineSamples: number;
  traffic: EventTraffic;
  floodRun: Awaited<ReturnType<typeof flood>>;
  floodEndRss: number;
  paced: Awaited<ReturnType<typeof pacedPhase>>;
  endRss: number;
  beforeKill: Awaited<ReturnType<typeof spendOf>>;
  snapshots: Snapshot[];
  recovery: Awaited<ReturnType<typeof killAndRecover>>;
  seconds: Second[];
}

/** The snapshots' sizes and turns: wall time, and time on a CPU where the daemon could tell. */
function snapshotSummary(picked: Snapshot[]) {
  const onCpu = picked.every((s) => s.turns.longestOnCpuMs !== undefined);
  return {
    count: picked.length,
    longestSeconds: maxOf(picked.map((s) => s.seconds)),
    largestIds: maxOf(picked.map((s) => s.ids)),
    longestTurnMs: maxOf(picked.map((s) => s.turns.longestMs)),
    slowTurns: picked.reduce((sum, s) => sum + s.turns.slowTurns, 0),
    snapshotsWithSlowTurns: picked.filter((s) => s.turns.slowTurns > 0).length,
    longestTurnOnCpuMs: onCpu ? maxOf(picked.map((s) => s.turns.longestOnCpuMs!)) : undefined,
    slowTurnsOnCpu: onCpu ? picked.reduce((sum, s) => sum + s.turns.slowTurnsOnCpu!, 0) : undefined,
  };
}

function reportOf({
  date,
  baseline,
  baselineSamples,
  traffic,
  floodRun,
  floodEndRss,
  paced,
  endRss,
  beforeKill,
  snapshots,
  recovery: { recovered, listeningSeconds, recoveredLine },
  seconds,
}: Run) {
  const floodEvents = floodRun.acknowledged;
  const floodSnapshots = snapshots.filter((snapshot) => snapshot.endMs <= floodRun.endMs);
  const pacedSnapshots = snapshots.filter((snapshot) => snapshot.startMs >= floodRun.endMs);
  const floodSeconds = seconds.slice(baselineSamples).filter((second) => second.wallMs <= floodRun.endMs);
  const snapshotSecond = (second: Second) => overlapsAny(second.wallMs - 1000, second.wallMs, snapshots);
  const { acknowledgedEvents, acknowledgedNanos, ambiguous } = traffic;
  const report = {
    date,
    commit: gitCommit(),
    machine: machineInfo(),
    options: { ...options, tokenTtlSeconds, attributionWindowSeconds: 20 },
    events: {
      acknowledged: acknowledgedEvents,
      flood: { acknowledged: floodEvents, perSecond: floodEvents / floodRun.seconds, seconds: floodRun.seconds },
      paced: paced.windows,
      refusedByStatus: Object.fromEntries(traffic.refused),
      transportErrors: traffic.transportErrors,
      ambiguous,
      probeErrors,
    },
    rssMiB: { afterWarmUp: floodRun.warmRss, endOfFlood: floodEndRss, end: endRss },
    eventLoopLagMaxMs: {
      baseline: maxOf(seconds.slice(0, baselineSamples).map((s) => s.lagMaxMs)),
      flood: maxOf(floodSeconds.map((s) => s.lagMaxMs)),
      floodWhileSnapshotting: maxOf(floodSeconds.filter(snapshotSecond).map((s) => s.lagMaxMs)),
      floodOtherwise: maxOf(floodSeconds.filter((s) => !snapshotSecond(s)).map((s) => s.lagMaxMs)),
      pacedQuiet: maxOf(seconds.filter((s) => paced.windows.some((w) => !w.withEvents && s.wallMs > w.startMs && s.wallMs <= w.endMs)).map((s) => s.lagMaxMs)),
      pacedWhileSnapshotting: maxOf(seconds.filter((s) => s.wallMs > floodRun.endMs && snapshotSecond(s)).map((s) => s.lagMaxMs)),
    },
    snapshots: {
      count: snapshots.length,
      flood: snapshotSummary(floodSnapshots),
      paced: snapshotSummary(pacedSnapshots),
      each: snapshots,
    },
    adLatency: {
      baseline: summary(baseline.map((sample) => sample.latencyMs)),
      flood: summary(floodRun.latencies.map((sample) => sample.latencyMs)),
      paced: pacedLatency(paced.windows, paced.latencies, snapshots),
    },
    recovery: {
      acknowledgedNanos: String(acknowledgedNanos),
      beforeKill: { ...beforeKill, lifetimeNanos: String(beforeKill.lifetimeNanos) },
      recovered: { ...recovered, lifetimeNanos: String(recovered.lifetimeNanos) },
      // Exact when no event was ambiguous (recorded by an attempt whose answer was lost).
      exact: recovered.lifetimeNanos === acknowledgedNanos && recovered.events === acknowledgedEvents + ambiguous,
      matchesStateBeforeKill: recovered.lifetimeNanos === beforeKill.lifetimeNanos && recovered.events === beforeKill.events,
      restartToListeningSeconds: listeningSeconds,
      recoveredLine,
    },
    seconds,
  };
  return report;
}

function markdownOf(report: ReturnType<typeof reportOf>): string {
  const ms = (value: number): string => `${value.toFixed(2)} ms`;
  const turnsOf = (phase: string, picked: ReturnType<typeof snapshotSummary>): string =>
    `${phase}: longest ${ms(picked.longestTurnMs)} wall time, ${picked.slowTurns} turns over 5 ms in ${picked.snapshotsWithSlowTurns} snapshots` +
    (picked.longestTurnOnCpuMs === undefined ? '' : `; longest on a CPU ${ms(picked.longestTurnOnCpuMs)}, ${picked.slowTurnsOnCpu} turns over 5 ms`);
  const latency = (name: string, row: ReturnType<typeof summary>): string =>
    `| ${name} | ${row.count} | ${ms(row.p50Ms)} | ${ms(row.p99Ms)} | ${ms(row.maxMs)} |`;
  const { events, snapshots, eventLoopLagMaxMs: lag, adLatency, recovery } = report;
  const pacedWindows = events.paced.filter((window) => window.withEvents);
  const pacedRate = pacedWindows.reduce((sum, w) => sum + w.eventsAcknowledged, 0) / pacedWindows.reduce((sum, w) => sum + (w.endMs - w.startMs) / 1000, 0);
  return [
    `# Ledger soak, ${report.date}`,
    '',
    `Commit ${report.commit}; ${report.machine.cores} × ${report.machine.cpu}; model ${options.model}; tokens live ${tokenTtlSeconds} s, attribution window 20 s; a snapshot every ${options['snapshot-events']} events.`,
    '',
    `- Events acknowledged: ${events.acknowledged} in all; the flood ${events.flood.acknowledged} in ${events.flood.seconds.toFixed(0)} s (${events.flood.perSecond.toFixed(0)}/s); the paced phase ${pacedRate.toFixed(0)}/s in ${pacedWindows.length} windows of ${options['window-seconds']} s between as many without events. Refused by status: ${JSON.stringify(events.refusedByStatus)}, transport errors retried: ${events.transportErrors} (${events.ambiguous} ambiguous), probe errors: ${events.probeErrors}`,
    `- Daemon RSS: ${report.rssMiB.afterWarmUp.toFixed(0)} MiB a minute into the flood, ${report.rssMiB.endOfFlood.toFixed(0)} MiB at its end, ${report.rssMiB.end.toFixed(0)} MiB after the paced phase`,
    `- Snapshots: ${snapshots.count}. During the flood ${snapshots.flood.count}, each of at most ${snapshots.flood.largestIds} event ids, written in at most ${snapshots.flood.longestSeconds.toFixed(2)} s; during the paced phase ${snapshots.paced.count}`,
    `- Turns of the event loop a snapshot held (its capture, or one chunk), measured in the daemon: ${turnsOf('flood', snapshots.flood)}; ${turnsOf('paced phase', snapshots.paced)}. Wall time counts whatever lands inside a turn (a collection, the scheduler running another thread of this saturated 2-core box); time on a CPU (Linux schedstat of the JS thread) is the snapshot's own work, collections included`,
    `- Longest event-loop stall in any second (nodejs_eventloop_lag_max_seconds, all causes): before any event ${ms(lag.baseline)}; flood ${ms(lag.flood)} (${ms(lag.floodWhileSnapshotting)} in seconds with a snapshot being written, ${ms(lag.floodOtherwise)} in the others); paced phase ${ms(lag.pacedQuiet)} in quiet windows, ${ms(lag.pacedWhileSnapshotting)} in seconds with a snapshot`,
    `- kill -9 and restart: ${recovery.recovered.events} events and ${recovery.recovered.lifetimeNanos} nanos recovered vs ${events.acknowledged} and ${recovery.acknowledgedNanos} acknowledged (${recovery.exact ? 'exact' : 'NOT EXACT'}; ${recovery.matchesStateBeforeKill ? 'equal to' : 'DIFFERENT FROM'} the state just before the kill: ${recovery.beforeKill.events} events, ${recovery.beforeKill.lifetimeNanos} nanos); listening again after ${recovery.restartToListeningSeconds.toFixed(1)} s`,
    '',
    `Ad latency of the fixed-rate probe (${probeRate}/s), from send to answer:`,
    '',
    '| when | requests | p50 | p99 | max |',
    '|---|---|---|---|---|',
    latency('before any event', adLatency.baseline),
    latency('flood (events take every core)', adLatency.flood),
    latency('paced: quiet windows', adLatency.paced.quiet),
    latency('paced: quiet, odd windows (noise pair)', adLatency.paced.quietOddWindows),
    latency('paced: quiet, even windows (noise pair)', adLatency.paced.quietEvenWindows),
    latency('paced: event windows', adLatency.paced.withEvents),
    latency('paced: event windows, other seconds', adLatency.paced.withEventsNoSnapshot),
    latency('paced: event windows, within 0.5 s of a snapshot being written', adLatency.paced.withEventsDuringSnapshot),
    '',
  ].join('\n');
}

runBench(main);
