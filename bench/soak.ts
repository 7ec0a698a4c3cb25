// `npm run bench -- soak [--model dir] [--events n] [--max-minutes m] [--event-connections n] [--probe-rate r] [--cap-window-seconds s]`:
// millions of events through the local ledger of a real daemon while ads are served. Tokens come
// from real ad responses; each served ad gets its impression, click and conversion over
// POST /v1/events. Tokens live 20 s and the attribution window is 20 s, so the ledger forgets ids
// and served ads all through the soak. Reported: the daemon's RSS after warm-up and at the end, its
// snapshots' longest single turn on the event loop (from their log lines), its longest event-loop
// stall per second from any cause (nodejs_eventloop_lag_max_seconds, 1 ms resolution) with and
// without a snapshot being written, the ad latency of a fixed-rate probe against a baseline
// without events, and after kill -9 and a restart, the recovered spend against what was
// acknowledged and how long recovery took.
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { rehashManifestFile } from '../src/engine/model_dir';
import { projectRoot } from '../src/paths';
import { decodeAdResponse } from '../src/protocol/encode_request';
import { startDaemon } from './daemon';
import { gitCommit, machineInfo, runBench, writeReport } from './report';
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
  const copy = mkdtempSync(path.join(tmpdir(), 'adserve-soak-model-'));
  cpSync(path.resolve(projectRoot, options.model), copy, { recursive: true });
  const catalogPath = path.join(copy, 'catalog.json');
  const catalog = JSON.parse(readFileSync(catalogPath, 'utf8')) as {
    campaigns: Array<{ daily_budget_micros: number; lifetime_budget_micros?: number; pacing: string; frequency_cap?: { window_seconds: number } }>;
  };
  for (const campaign of catalog.campaigns) {
    campaign.daily_budget_micros = 0;
    delete campaign.lifetime_budget_micros;
    campaign.pacing = 'asap';
    if (campaign.frequency_cap && options['cap-window-seconds'] !== undefined) campaign.frequency_cap.window_seconds = Number(options['cap-window-seconds']);
  }
  writeFileSync(catalogPath, JSON.stringify(catalog));
  rehashManifestFile(copy, 'catalog.json');
  return copy;
}

const env = {
  ADSERVE_MODEL_DIR: modelDir(),
  ADSERVE_EVENT_TOKEN_KEY: 'soak-token-key-0123456789abcdef0123',
  ADSERVE_ADMIN_TOKEN: adminToken,
  ADSERVE_EVENT_TOKEN_TTL_SECONDS: String(tokenTtlSeconds),
  ADSERVE_ATTRIBUTION_WINDOW_SECONDS: '20',
};

// Idle sockets are closed well before the daemon's 10 s idle timeout, which would otherwise reset one just as it is reused.
const agent = new http.Agent({ keepAlive: true, timeout: 4_000, maxSockets: Number(options['event-connections']) + 16 });

function post(url: string, route: string, body: Buffer, contentType: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${url}${route}`, { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': body.length } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

const requests = benchRequests(4_096, 7, 4);
let requestIndex = 0;

/** One ad request; its event tokens, with when they were issued. */
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

let probeErrors = 0;

/** Ad requests at a fixed rate (open loop), latencies collected while `running()`. */
async function probe(url: string, running: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  const inFlight: Array<Promise<void>> = [];
  const start = performance.now();
  for (let sent = 0; running(); sent++) {
    const due = start + (sent * 1000) / probeRate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(serveAds(url).then(({ latencyMs }) => void latencies.push(latencyMs), () => void probeErrors++));
    if (inFlight.length > 1000) await Promise.all(inFlight.splice(0, 500));
  }
  await Promise.all(inFlight);
  return latencies;
}

async function main(): Promise<void> {
  const date = new Date().toISOString();
  const daemon = await startDaemon(env);
  const pid = daemon.child.pid!;
  const snapshotTmp = path.join(daemon.dataDir, 'snapshot.jsonl.tmp');
  const queue: Array<{ token: string; issuedMs: number }> = [];
  let acknowledgedEvents = 0;
  let transportErrors = 0;
  let ambiguous = 0;
  let acknowledgedNanos = 0n;
  const refused = new Map<number, number>();
  let sending = true;
  let stopAt = Infinity;

  const harvest = async (): Promise<void> => {
    while (sending) {
      if (queue.length > 2_000) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      const answer = await serveAds(daemon.url).catch(() => undefined);
      if (!answer) {
        transportErrors++;
        continue;
      }
      const { tokens } = answer;
      const issuedMs = Date.now();
      for (const token of tokens) queue.push({ token, issuedMs });
    }
  };
  let eventSeq = 0;
  const sendEvents = async (): Promise<void> => {
    while (sending && acknowledgedEvents < stopAt) {
      const served = queue.shift();
      // Tokens that would expire mid-sequence are skipped rather than refused.
      if (!served || Date.now() - served.issuedMs > (tokenTtlSeconds * 1000) / 2) {
        await new Promise((resolve) => setTimeout(resolve, 2));
        continue;
      }
      for (const type of ['impression', 'click', 'conversion']) {
        const body = Buffer.from(JSON.stringify({ event_id: `soak-${eventSeq++}`, type, token: served.token }));
        let response = await post(daemon.url, '/v1/events', body, 'application/json').catch(() => undefined);
        // A connection lost mid-request: the same event id again, so it is recorded once either way.
        for (let retry = 0; !response && retry < 3; retry++) {
          transportErrors++;
          response = await post(daemon.url, '/v1/events', body, 'application/json').catch(() => undefined);
          if (response?.status === 409) ambiguous++; // recorded by the lost attempt, at a charge not seen here
        }
        if (!response) throw new Error('events: the daemon stopped answering');
        if (response.status === 200) {
          acknowledgedEvents++;
          acknowledgedNanos += BigInt(Math.round((JSON.parse(response.body.toString()) as { chargedMicros: number }).chargedMicros * 1000));
        } else {
          refused.set(response.status, (refused.get(response.status) ?? 0) + 1);
          break;
        }
      }
    }
  };

  // Per second: events acknowledged, the daemon's longest event-loop stall, whether a snapshot was being written, RSS.
  const seconds: Array<{ t: number; events: number; lagMaxMs: number; snapshotting: boolean; rssMiB: number }> = [];
  let sampling = true;
  const sampler = (async () => {
    const started = Date.now();
    await lagMaxMs(daemon.url); // resets the maximum
    while (sampling) {
      let snapshotting = false;
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (existsSync(snapshotTmp)) snapshotting = true;
      }
      seconds.push({ t: (Date.now() - started) / 1000, events: acknowledgedEvents, lagMaxMs: await lagMaxMs(daemon.url), snapshotting, rssMiB: rssMiB(pid) });
    }
  })();

  // Baseline: the probe alone, no events.
  const baselineSeconds = Number(options['baseline-seconds']);
  const baselineEnd = Date.now() + baselineSeconds * 1000;
  const baseline = await probe(daemon.url, () => Date.now() < baselineEnd);
  const baselineSamples = seconds.length;

  // Soak: events as fast as the connections go, the probe at the same rate.
  const workers = [harvest(), harvest(), ...Array.from({ length: Number(options['event-connections']) }, sendEvents)];
  const soakStarted = Date.now();
  const deadline = soakStarted + Number(options['max-minutes']) * 60_000;
  stopAt = targetEvents;
  let warmRss = NaN;
  const soakLatencies = await probe(daemon.url, () => {
    if (Number.isNaN(warmRss) && Date.now() - soakStarted > 60_000) warmRss = rssMiB(pid);
    const done = acknowledgedEvents >= targetEvents || Date.now() > deadline;
    if (done) sending = false;
    return !done;
  });
  await Promise.all(workers); // every event sent is answered: nothing is in flight at the kill
  const soakSeconds = (Date.now() - soakStarted) / 1000;
  sampling = false;
  await sampler;
  const endRss = rssMiB(pid);
  const beforeKill = await spendOf(daemon.url);
  const snapshots = [...daemon.output().matchAll(/^.*"msg":"spend ledger snapshot".*$/gm)].map(
    (line) => JSON.parse(line[0]) as { events: number; ids: number; seconds: number; longestTurnMs: number },
  );

  daemon.child.kill('SIGKILL');
  await daemon.stop();
  const restartStarted = Date.now();
  const restarted = await startDaemon({ ...env, ADSERVE_DATA_DIR: daemon.dataDir });
  const listeningSeconds = (Date.now() - restartStarted) / 1000;
  const recoveredLine = /"msg":"spend ledger".*$/m.exec(restarted.output())?.[0] ?? '';
  const recovered = await spendOf(restarted.url);
  await restarted.stop();

  const soakSamples = seconds.slice(baselineSamples);
  const maxOf = (values: number[]): number => values.reduce((a, b) => Math.max(a, b), 0);
  const report = {
    date,
    commit: gitCommit(),
    machine: machineInfo(),
    options: { ...options, tokenTtlSeconds, attributionWindowSeconds: 20 },
    events: { acknowledged: acknowledgedEvents, perSecond: acknowledgedEvents / soakSeconds, refusedByStatus: Object.fromEntries(refused), soakSeconds, transportErrors, ambiguous, probeErrors },
    rssMiB: { afterWarmUp: warmRss, end: endRss },
    eventLoopLagMaxMs: {
      baseline: maxOf(seconds.slice(0, baselineSamples).map((s) => s.lagMaxMs)),
      soak: maxOf(soakSamples.map((s) => s.lagMaxMs)),
      soakWhileSnapshotting: maxOf(soakSamples.filter((s) => s.snapshotting).map((s) => s.lagMaxMs)),
      soakOtherwise: maxOf(soakSamples.filter((s) => !s.snapshotting).map((s) => s.lagMaxMs)),
      secondsSnapshotting: soakSamples.filter((s) => s.snapshotting).length,
    },
    snapshots: {
      count: snapshots.length,
      longestTurnMs: maxOf(snapshots.map((snapshot) => snapshot.longestTurnMs)),
      longestSeconds: maxOf(snapshots.map((snapshot) => snapshot.seconds)),
      largestIds: maxOf(snapshots.map((snapshot) => snapshot.ids)),
      each: snapshots,
    },
    adLatency: { baseline: summary(baseline), soak: summary(soakLatencies) },
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
  const markdown = [
    `# Ledger soak, ${date}`,
    '',
    `Commit ${report.commit}; ${report.machine.cores} × ${report.machine.cpu}; model ${options.model}; tokens live ${tokenTtlSeconds} s, attribution window 20 s.`,
    '',
    `- Events acknowledged: ${acknowledgedEvents} in ${soakSeconds.toFixed(0)} s (${report.events.perSecond.toFixed(0)}/s), refused by status: ${JSON.stringify(report.events.refusedByStatus)}, transport errors retried: ${transportErrors} (${ambiguous} ambiguous), probe errors: ${probeErrors}`,
    `- Daemon RSS: ${warmRss.toFixed(0)} MiB after a minute, ${endRss.toFixed(0)} MiB at the end`,
    `- Snapshots: ${snapshots.length}, each holding at most ${report.snapshots.largestIds} event ids, written in at most ${report.snapshots.longestSeconds.toFixed(2)} s; the longest any held the event loop in one turn (capture or one chunk, measured in the daemon): ${report.snapshots.longestTurnMs.toFixed(2)} ms`,
    `- Longest event-loop stall in any second (nodejs_eventloop_lag_max_seconds, all causes, including this shared box's scheduling): baseline ${report.eventLoopLagMaxMs.baseline.toFixed(2)} ms; soak ${report.eventLoopLagMaxMs.soak.toFixed(2)} ms, ${report.eventLoopLagMaxMs.soakWhileSnapshotting.toFixed(2)} ms in the ${report.eventLoopLagMaxMs.secondsSnapshotting} seconds with a snapshot being written, ${report.eventLoopLagMaxMs.soakOtherwise.toFixed(2)} ms in the others`,
    `- Ad latency at ${probeRate}/s: baseline p50 ${report.adLatency.baseline.p50Ms.toFixed(2)} ms, p99 ${report.adLatency.baseline.p99Ms.toFixed(2)} ms; during the soak p50 ${report.adLatency.soak.p50Ms.toFixed(2)} ms, p99 ${report.adLatency.soak.p99Ms.toFixed(2)} ms`,
    `- kill -9 and restart: ${recovered.events} events and ${recovered.lifetimeNanos} nanos recovered vs ${acknowledgedEvents} and ${acknowledgedNanos} acknowledged (${report.recovery.exact ? 'exact' : 'NOT EXACT'}; ${report.recovery.matchesStateBeforeKill ? 'equal to' : 'DIFFERENT FROM'} the state just before the kill: ${beforeKill.events} events, ${beforeKill.lifetimeNanos} nanos); listening again after ${listeningSeconds.toFixed(1)} s`,
    '',
  ].join('\n');
  writeReport('soak', date, report, markdown);
  agent.destroy();
}

runBench(main);
