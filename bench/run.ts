// `npm run bench -- [--model dir] [--duration s] [--connections n] [--max-connections n] [--rate r,r...] [--rounds n] [--sweep batching|all]`:
// drives the real daemon and writes JSON + Markdown to bench/results/. Closed-loop scenarios run
// autocannon; fixed-rate ones run our open-loop driver (bench/open_loop.ts: uniform arrivals,
// latency from the scheduled send time), at each --rate and at half of the best closed-loop
// throughput of the same round. Every ad-path number is reported next to baselines measured in the
// same run: GET /livez (uWebSockets.js and Node with no protocol work) and the ad path with batching
// off (maxBatch 1). The batching sweep crosses max batch with max delay; `all` adds candidates
// scored (100 / 300 / 1000) and slots (1 / 4). Trials are interleaved, each on a fresh daemon
// process. The headline is the daemon's CPU time per request (/proc, split into its JS thread and
// the rest); the daemon's stage histograms give time per stage, and the roofline line sets fusion's
// GFLOP/s and the IVF scan's GB/s against this machine's peaks, measured at the start of the run.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import autocannon from 'autocannon';

import { loadConfig } from '../src/config';
import { addon } from '../src/engine/addon';
import { projectRoot } from '../src/paths';
import { decodeAdResponse } from '../src/protocol/encode_request';
import { ResponseStatus } from '../src/protocol/schema';
import { daemonEnv, startDaemon } from './daemon';
import { daemonCpu, engineStageNames, jsStageNames, scrapeStages, stageMicrosPerRequest } from './daemon_cost';
import { type OpenLoopResult, runOpenLoop } from './open_loop';
import { gitCommit, machineInfo, median, runBench, writeReport } from './report';
import { benchRequests } from './requests';
import { type EngineInfo, engineInfo, type FusionShape, fusionFlopsPerCandidate, measurePeak, readFusionShape, scanBytesPerQuery } from './roofline';

interface Scenario {
  name: string;
  /** Request body per call; absent for GET. */
  bodies?: Buffer[];
  path: string;
  /** Fixed offered load in requests/s, or half of a closed-loop scenario's req/s in the same round; absent for a closed loop. */
  rate?: number | { halfOf: string };
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
  /** Daemon CPU time (user + system, all threads) over the measured window, per answered request. */
  cpuMicrosPerRequest: number;
  /** The part of it spent on the daemon's main (JS) thread. */
  jsThreadCpuMicrosPerRequest: number;
  /** Microseconds per request in each decision stage (see stageMicrosPerRequest). */
  stageMicros: Record<string, number>;
  /** Batch size seen by the average request. */
  meanBatchSize: number;
  /** Share of answered requests that skipped fusion because their deadline had passed. */
  degradedShare: number;
  /** Fixed-rate trials: what the open-loop driver saw. */
  openLoop?: Omit<OpenLoopResult, 'latencyMs'>;
  engine?: EngineInfo;
}

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    /** Open-loop rates (req/s), comma-separated; a half-of-saturation run is added to them. */
    rate: { type: 'string', default: '100' },
    /** Open loop: connections are opened as needed up to this many; past it a due request is dropped. */
    'max-connections': { type: 'string', default: '512' },
    rounds: { type: 'string', default: '2' },
    model: { type: 'string', default: 'models/demo' },
    sweep: { type: 'string', default: 'all' },
  },
});

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

async function runTrial(scenario: Scenario, rate: number | undefined, round: number): Promise<Trial> {
  const daemon = await startDaemon({ ADSERVE_MODEL_DIR: path.resolve(projectRoot, options.model!), ...scenario.env });
  try {
    if (scenario.bodies) await checkAdResponses(daemon.url, scenario.bodies);
    const measure = async (
      run: () => Promise<Pick<Trial, 'requestsPerSecond' | 'latencyMs' | 'requests' | 'errors' | 'non2xx' | 'openLoop'>>,
    ): Promise<Trial> => {
      // Scrapes fall outside the CPU window: rendering /metrics is not the requests' work.
      const stagesBefore = await scrapeStages(daemon.url);
      const cpuBefore = daemonCpu(daemon.child.pid!);
      const measured = await run();
      const cpuAfter = daemonCpu(daemon.child.pid!);
      const stagesAfter = await scrapeStages(daemon.url);
      const answered = Math.max(1, measured.requests + measured.non2xx);
      const batchRequests = stagesAfter.batchCount - stagesBefore.batchCount;
      return {
        scenario: scenario.name,
        round,
        ...measured,
        cpuMicrosPerRequest: ((cpuAfter.total - cpuBefore.total) * 1e6) / answered,
        jsThreadCpuMicrosPerRequest: ((cpuAfter.jsThread - cpuBefore.jsThread) * 1e6) / answered,
        stageMicros: stageMicrosPerRequest(stagesBefore, stagesAfter),
        meanBatchSize: batchRequests > 0 ? (stagesAfter.batchSum - stagesBefore.batchSum) / batchRequests : 0,
        degradedShare: (stagesAfter.degraded - stagesBefore.degraded) / answered,
        engine: engineInfo(daemon.output()),
      };
    };
    let next = 0;
    const bodies = scenario.bodies;
    const common = {
      url: daemon.url,
      connections: Number(options.connections),
      duration: Number(options.duration),
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
    if (rate !== undefined) {
      const openLoop = (durationSeconds: number) =>
        runOpenLoop({
          host: '127.0.0.1',
          port: daemon.port,
          path: scenario.path,
          bodies: scenario.bodies,
          contentType: 'application/x-flatbuffers',
          rate,
          durationSeconds,
          initialConnections: Number(options.connections),
          maxConnections: Number(options['max-connections']),
        });
      // Not recorded: every distinct body once, so the user and context caches hold what they hold at
      // saturation (where each body comes round several times in a trial) and a fixed rate's CPU per
      // request compares with saturation's like for like; then the open loop's own connections.
      if (bodies) await autocannon({ ...common, amount: bodies.length });
      await openLoop(1);
      return await measure(async () => {
        const { latencyMs, ...seen } = await openLoop(Number(options.duration));
        return { requestsPerSecond: seen.achievedRate, latencyMs, requests: seen.ok, errors: seen.errors + seen.timedOut, non2xx: seen.non2xx, openLoop: seen };
      });
    }
    await autocannon({ ...common, duration: 2 }); // warm-up, not recorded
    return await measure(async () => {
      const result = await autocannon(common);
      return {
        requestsPerSecond: result.requests.average,
        latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p999: result.latency.p99_9, mean: result.latency.average },
        // autocannon counts 2xx and non-2xx answers together.
        requests: result.requests.total - result.non2xx,
        errors: result.errors + result.timeouts,
        non2xx: result.non2xx,
      };
    });
  } finally {
    await daemon.stop();
  }
}

interface ModelFacts {
  ads: number;
  embeddingDim: number;
  fusion: FusionShape;
}

function readModelFacts(modelDir: string): ModelFacts {
  const manifest = JSON.parse(readFileSync(path.join(modelDir, 'manifest.json'), 'utf8')) as {
    embedding_dim: number;
    files: Record<string, { shape: number[] }>;
  };
  return { ads: manifest.files['ad_embeddings.f32']!.shape[0]!, embeddingDim: manifest.embedding_dim, fusion: readFusionShape(modelDir) };
}

async function main(): Promise<void> {
  const bodies = benchRequests(2000);
  const rates = options.rate!.split(',').map(Number);
  if (rates.some((rate) => !(rate > 0))) throw new Error(`--rate must be positive numbers (got ${JSON.stringify(options.rate)})`);
  const modelDir = path.resolve(projectRoot, options.model!);
  const model = readModelFacts(modelDir);
  // Measured before any daemon runs, against the 8-bit codes' size (the default scan's working set).
  const peak = measurePeak(model.ads * model.embeddingDim);
  process.stdout.write(`peak: ${JSON.stringify(peak)}\n`);
  const batched = (maxBatch: number, maxDelayUs: number): Record<string, string> => ({
    ADSERVE_MAX_BATCH: String(maxBatch),
    ADSERVE_MAX_DELAY_US: String(maxDelayUs),
  });
  const unbatched = batched(1, 0);
  const baseline = 'ads, maxBatch 1 (baseline)';
  const best = 'ads, maxBatch 32, 1000 µs';
  const fixedRate = (rate: number, env: Record<string, string>, label: string): Scenario => ({
    name: `ads @${rate}/s open loop, ${label}`,
    path: '/v1/ads',
    bodies,
    rate,
    env,
  });
  const halfSaturation = 'ads @half saturation open loop, maxBatch 32, 1000 µs';
  const oneBatcherThread = { ...batched(32, 1000), ADSERVE_BATCH_THREADS: '1' };
  const oneThreadBest = 'ads, maxBatch 32, 1000 µs, 1 batcher thread';
  const amx = addon.buildInfo().fusionKernels.bf16[0] === 'amx';
  const avx512Bf16Best = `${best}, fusionKernel avx512bf16`;
  const scenarios: Scenario[] = [
    { name: 'livez (transport baseline)', path: '/livez' },
    { name: baseline, path: '/v1/ads', bodies, env: unbatched },
    { name: 'ads, maxBatch 8, 250 µs', path: '/v1/ads', bodies, env: batched(8, 250) },
    { name: 'ads, maxBatch 8, 1000 µs', path: '/v1/ads', bodies, env: batched(8, 1000) },
    { name: 'ads, maxBatch 32, 250 µs', path: '/v1/ads', bodies, env: batched(32, 250) },
    { name: best, path: '/v1/ads', bodies, env: batched(32, 1000) },
    ...rates.flatMap((rate) => [fixedRate(rate, unbatched, 'maxBatch 1 (baseline)'), fixedRate(rate, batched(32, 1000), 'maxBatch 32, 1000 µs')]),
    { name: halfSaturation, path: '/v1/ads', bodies, rate: { halfOf: best }, env: batched(32, 1000) },
    { name: oneThreadBest, path: '/v1/ads', bodies, env: oneBatcherThread },
    // The daemon's fusionPrecision is 'auto' (bf16 or int16 where the CPU runs them natively): fp32 beside it, same rounds.
    { name: `${best}, fusionPrecision fp32`, path: '/v1/ads', bodies, env: { ...batched(32, 1000), ADSERVE_FUSION_PRECISION: 'fp32' } },
    { name: `${halfSaturation}, 1 batcher thread`, path: '/v1/ads', bodies, rate: { halfOf: oneThreadBest }, env: oneBatcherThread },
    // Where bf16 runs on AMX, the kernel of AVX512_BF16 CPUs without it beside it.
    ...(amx ? [{ name: avx512Bf16Best, path: '/v1/ads', bodies, env: { ...batched(32, 1000), ADSERVE_FUSION_KERNEL: 'avx512bf16' } }] : []),
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
      const rate =
        typeof scenario.rate === 'object'
          ? Math.max(1, Math.round(trials.find((t) => t.round === round && t.scenario === (scenario.rate as { halfOf: string }).halfOf)!.requestsPerSecond / 2))
          : scenario.rate;
      const trial = await runTrial(scenario, rate, round);
      process.stdout.write(
        `${trial.scenario} round ${round}: ${trial.requestsPerSecond.toFixed(0)} req/s${rate ? ` of ${rate} offered` : ''}, p99 ${trial.latencyMs.p99.toFixed(2)} ms, ` +
          `CPU ${trial.cpuMicrosPerRequest.toFixed(0)} µs/req, batch ${trial.meanBatchSize.toFixed(1)}\n`,
      );
      trials.push(trial);
    }
  }
  const summary = scenarios.map((scenario) => {
    const own = trials.filter((t) => t.scenario === scenario.name);
    const stages = [...new Set(own.flatMap((t) => Object.keys(t.stageMicros)))];
    const stageMicros = Object.fromEntries(stages.map((stage) => [stage, median(own.map((t) => t.stageMicros[stage] ?? 0))]));
    // Only the settings the roofline needs: the whole config may hold secrets, which reports must not.
    const { fusion, annCandidates, scoreCandidates } = loadConfig(daemonEnv({ ADSERVE_MODEL_DIR: modelDir, ...scenario.env }));
    return {
      scenario: scenario.name,
      openLoop: scenario.rate !== undefined,
      config: { fusion, annCandidates, scoreCandidates },
      engine: own[0]!.engine,
      offeredRate: median(own.map((t) => t.openLoop?.offeredRate ?? 0)),
      requestsPerSecond: median(own.map((t) => t.requestsPerSecond)),
      p50Ms: median(own.map((t) => t.latencyMs.p50)),
      p90Ms: median(own.map((t) => t.latencyMs.p90)),
      p99Ms: median(own.map((t) => t.latencyMs.p99)),
      p999Ms: median(own.map((t) => t.latencyMs.p999)),
      cpuMicrosPerRequest: median(own.map((t) => t.cpuMicrosPerRequest)),
      jsThreadCpuMicrosPerRequest: median(own.map((t) => t.jsThreadCpuMicrosPerRequest)),
      meanBatchSize: median(own.map((t) => t.meanBatchSize)),
      degradedShare: median(own.map((t) => t.degradedShare)),
      stageMicros,
      sendLagP99Ms: median(own.map((t) => t.openLoop?.sendLagMs.p99 ?? 0)),
      connections: Math.max(...own.map((t) => t.openLoop?.connectionsOpened ?? 0)),
      dropped: own.reduce((sum, t) => sum + (t.openLoop?.dropped ?? 0), 0),
      non2xx: own.reduce((sum, t) => sum + t.non2xx, 0),
      errors: own.reduce((sum, t) => sum + t.errors, 0),
    };
  });
  const roofline = summary
    .filter((s) => s.stageMicros.score !== undefined && s.engine)
    .map((s) => {
      // Degraded requests skip fusion; every other one scores scoreCandidates (fewer only where retrieval finds fewer).
      const flopsPerRequest = fusionFlopsPerCandidate(model.fusion, s.config.fusion, model.embeddingDim) * s.config.scoreCandidates * (1 - s.degradedShare);
      const scanBytes = scanBytesPerQuery(s.engine!, s.config, model.embeddingDim);
      const fusionGflops = flopsPerRequest / (s.stageMicros.score! * 1e3);
      const scanGBps = scanBytes === undefined ? undefined : scanBytes / (s.stageMicros.retrieve! * 1e3);
      return {
        scenario: s.scenario,
        candidatesScored: s.config.scoreCandidates,
        degradedShare: s.degradedShare,
        fusionPrecision: `${s.engine!.fusionPrecision} (${s.engine!.fusionKernel})`,
        fusionMflopPerRequest: flopsPerRequest / 1e6,
        scoreMicros: s.stageMicros.score!,
        fusionGflops,
        fusionShareOfCorePeak: fusionGflops / peak.fmaGflopsOneCore,
        index: s.engine!.index,
        scanMBPerQuery: scanBytes === undefined ? undefined : scanBytes / 1e6,
        retrieveMicros: s.stageMicros.retrieve!,
        scanGBps,
        scanShareOfWorkingSetRoof: scanGBps === undefined ? undefined : scanGBps / peak.readGBpsWorkingSetOneCore,
        scanShareOfDramRoof: scanGBps === undefined ? undefined : scanGBps / peak.readGBpsDramOneCore,
      };
    });
  const byName = new Map(summary.map((row) => [row.scenario, row]));
  const get = (name: string) => byName.get(name)!;
  const firstRate = (label: string): string => fixedRate(rates[0]!, {}, label).name;
  const ratios = {
    batch32ThroughputVsUnbatched: get(best).requestsPerSecond / get(baseline).requestsPerSecond,
    batcherThreadsThroughputVsOne: get(best).requestsPerSecond / get(oneThreadBest).requestsPerSecond,
    unbatchedThroughputVsLivez: get(baseline).requestsPerSecond / get(scenarios[0]!.name).requestsPerSecond,
    batch32P99AtFixedRateVsUnbatched: get(firstRate('maxBatch 32, 1000 µs')).p99Ms / get(firstRate('maxBatch 1 (baseline)')).p99Ms,
    batch32CpuPerRequestVsUnbatched: get(best).cpuMicrosPerRequest / get(baseline).cpuMicrosPerRequest,
    cpuPerRequestAtFixedRateVsSaturation: get(firstRate('maxBatch 32, 1000 µs')).cpuMicrosPerRequest / get(best).cpuMicrosPerRequest,
    defaultPrecisionCpuPerRequestVsFp32: get(best).cpuMicrosPerRequest / get(`${best}, fusionPrecision fp32`).cpuMicrosPerRequest,
    defaultPrecisionThroughputVsFp32: get(best).requestsPerSecond / get(`${best}, fusionPrecision fp32`).requestsPerSecond,
    ...(amx
      ? {
          amxCpuPerRequestVsAvx512Bf16: get(best).cpuMicrosPerRequest / get(avx512Bf16Best).cpuMicrosPerRequest,
          amxThroughputVsAvx512Bf16: get(best).requestsPerSecond / get(avx512Bf16Best).requestsPerSecond,
        }
      : {}),
  };
  const commit = gitCommit();
  const machine = machineInfo();
  const report = { date: new Date().toISOString(), commit, machine, options, peak, fusionShape: model.fusion, summary, roofline, ratios, trials };
  const stageNames = [...engineStageNames, ...jsStageNames];
  const ms = (value: number): string => value.toFixed(2);
  const micros = (value: number): string => value.toFixed(0);
  const percent = (share: number | undefined): string => (share === undefined ? 'n/a' : `${(share * 100).toFixed(1)} %`);
  const cpuColumns = (s: (typeof summary)[number]): string =>
    `**${micros(s.cpuMicrosPerRequest)}** | ${micros(s.jsThreadCpuMicrosPerRequest)} | ${micros(s.cpuMicrosPerRequest - s.jsThreadCpuMicrosPerRequest)}`;
  const vsBaseline = (s: (typeof summary)[number]): string =>
    s.stageMicros.score === undefined ? '' : (s.requestsPerSecond / get(baseline).requestsPerSecond).toFixed(2);
  const closedRows = summary
    .filter((s) => !s.openLoop)
    .map(
      (s) =>
        `| ${s.scenario} | ${cpuColumns(s)} | ${s.requestsPerSecond.toFixed(0)} | ${vsBaseline(s)} | ${s.p50Ms} | ${s.p99Ms} | ${s.meanBatchSize.toFixed(1)} | ${s.non2xx} | ${s.errors} |`,
    );
  const openRows = summary
    .filter((s) => s.openLoop)
    .map(
      (s) =>
        `| ${s.scenario} | ${cpuColumns(s)} | ${s.offeredRate.toFixed(0)} | ${s.requestsPerSecond.toFixed(1)} | ${ms(s.p50Ms)} | ${ms(s.p90Ms)} | ${ms(s.p99Ms)} | ${ms(s.p999Ms)} | ` +
        `${ms(s.sendLagP99Ms)} | ${s.connections} | ${s.meanBatchSize.toFixed(1)} | ${s.dropped} | ${s.non2xx} | ${s.errors} |`,
    );
  const stageRows = summary
    .filter((s) => Object.keys(s.stageMicros).length > 0)
    .map((s) => {
      const sum = (names: readonly string[]): number => names.reduce((total, stage) => total + (s.stageMicros[stage] ?? 0), 0);
      return `| ${s.scenario} | ${stageNames.map((stage) => micros(s.stageMicros[stage] ?? 0)).join(' | ')} | ${micros(sum(engineStageNames))} | ${micros(sum(jsStageNames))} |`;
    });
  const rooflineRows = roofline.map(
    (r) =>
      `| ${r.scenario} | ${r.candidatesScored} | ${percent(r.degradedShare)} | ${r.fusionPrecision} | ${r.fusionMflopPerRequest.toFixed(1)} | ${micros(r.scoreMicros)} | ${r.fusionGflops.toFixed(1)} | ${percent(r.fusionShareOfCorePeak)} | ${r.index} | ` +
      `${r.scanMBPerQuery === undefined ? 'n/a' : r.scanMBPerQuery.toFixed(2)} | ${micros(r.retrieveMicros)} | ${r.scanGBps === undefined ? 'n/a' : r.scanGBps.toFixed(2)} | ` +
      `${percent(r.scanShareOfWorkingSetRoof)} | ${percent(r.scanShareOfDramRoof)} |`,
  );
  const markdown = [
    `# HTTP benchmark, ${report.date}`,
    '',
    `commit ${commit}; model ${options.model}; ${machine.cpu} x${machine.cores}, ${machine.memoryGiB} GiB; Node ${machine.node}; ${options.duration} s per trial after a warm-up (closed loop: 2 s; fixed rate: every distinct request once, then 1 s at the rate, so the caches are as warm as at saturation), ${options.rounds} interleaved rounds, medians shown; the load generators run on the same box as the daemon, so absolute numbers understate a dedicated server: read the ratios.`,
    '',
    "Daemon CPU per request is user + system time of the whole daemon process (/proc/<pid>/stat, 10 ms ticks) over the measured window, divided by the answers; the JS thread is its main thread, the rest are the engine's worker and compute threads, libuv and V8's helpers.",
    '',
    `## Closed loop (autocannon, ${options.connections} connections)`,
    '',
    '| scenario | daemon CPU µs/req | JS thread µs/req | other threads µs/req | req/s | × maxBatch 1 | p50 ms | p99 ms | mean batch | non-2xx | errors |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...closedRows,
    '',
    '## Fixed rate, open loop (uniform arrivals)',
    '',
    `bench/open_loop.ts: request i is due at start + i / rate; latency runs from that scheduled time to the answer's last byte (no coordinated omission), 2xx answers only. One request in flight per keep-alive connection; ${options.connections} connections open at the start, more opened when every one is busy, up to ${options['max-connections']}; past that a due request is dropped (not sent, counted). Send lag: how late the millisecond timer sent a request, included in its latency. The half-saturation rate is half the closed-loop req/s of "${best}" in the same round.`,
    '',
    '| scenario | daemon CPU µs/req | JS thread µs/req | other threads µs/req | offered req/s | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | send lag p99 ms | connections | mean batch | dropped | non-2xx | errors |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...openRows,
    '',
    '## Time per stage',
    '',
    "µs per request. Engine stages are timed per batch on the engine's threads (wall time, which several compute threads may share) and split among the batch's requests (Σ b·T / Σ b² from the daemon's histograms: exact for batches of one size); exclusions, calibrate, quality, auction and encode run per request on the JS thread (JS stages is their sum).",
    '',
    `| scenario | ${stageNames.join(' | ')} | engine | JS stages |`,
    `|---|${stageNames.map(() => '---').join('|')}|---|---|`,
    ...stageRows,
    '',
    '## Roofline',
    '',
    `This machine, measured in this run (bench/peak.cpp, g++ -O3 -march=native, ${peak.isa}): fp32 FMA ${peak.fmaGflopsOneCore.toFixed(1)} GFLOP/s on one core (${peak.fmaGflopsAllThreads.toFixed(1)} on ${peak.threads} threads); ` +
      `reads ${peak.readGBpsWorkingSetOneCore.toFixed(1)} GB/s on one core from a ${(peak.workingSetBytes / 1e6).toFixed(1)} MB buffer (the catalog's 8-bit codes), ${peak.readGBpsDramOneCore.toFixed(1)} GB/s from 256 MiB (${peak.readGBpsDramAllThreads.toFixed(1)} on ${peak.threads} threads).`,
    '',
    `Fusion: ${micros(fusionFlopsPerCandidate(model.fusion, 'precomputed', model.embeddingDim) / 2)} multiply-adds per candidate after the first-layer precompute (layers ${model.fusion.layers.map(([out, input]) => `${input}→${out}`).join(', ')}, heads ${model.fusion.heads[1]}→${model.fusion.heads[0]}), over the score stage's time per request. ` +
      "Scan: bytes of ad vectors read per query, estimated as nprobe × mean list length × bytes per vector (the engine counts no scanned codes; coarse quantizer, re-rank and keyword matches left out), over the whole retrieve stage's time per request, so both figures are lower bounds on the kernels' own rates.",
    '',
    "| scenario | candidates scored | degraded | fusion precision (kernel) | fusion MFLOP/req | score µs/req | fusion GFLOP/s | of one core's FMA peak | index | scan MB/query | retrieve µs/req | scan GB/s | of one core's read roof (codes-sized) | of one core's DRAM read |",
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rooflineRows,
    '',
    `Ratios: throughput maxBatch 32, 1000 µs / maxBatch 1 = ${ratios.batch32ThroughputVsUnbatched.toFixed(2)}; ` +
      `maxBatch 32, 1000 µs with the default batcher threads / with 1 = ${ratios.batcherThreadsThroughputVsOne.toFixed(2)}; ` +
      `maxBatch 1 / livez = ${ratios.unbatchedThroughputVsLivez.toFixed(3)}; daemon CPU per request maxBatch 32 / maxBatch 1 = ${ratios.batch32CpuPerRequestVsUnbatched.toFixed(2)}; ` +
      `daemon CPU per request at ${rates[0]}/s / at saturation (maxBatch 32, 1000 µs) = ${ratios.cpuPerRequestAtFixedRateVsSaturation.toFixed(2)}; ` +
      `open-loop p99 at ${rates[0]}/s maxBatch 32 / maxBatch 1 = ${ratios.batch32P99AtFixedRateVsUnbatched.toFixed(2)}; ` +
      `maxBatch 32, 1000 µs at the default fusionPrecision / at fp32: daemon CPU per request ${ratios.defaultPrecisionCpuPerRequestVsFp32.toFixed(2)}, throughput ${ratios.defaultPrecisionThroughputVsFp32.toFixed(2)}` +
      (ratios.amxCpuPerRequestVsAvx512Bf16 !== undefined
        ? `; bf16 on AMX / on avx512bf16: daemon CPU per request ${ratios.amxCpuPerRequestVsAvx512Bf16.toFixed(2)}, throughput ${ratios.amxThroughputVsAvx512Bf16!.toFixed(2)}.`
        : '.'),
    '',
  ].join('\n');
  writeReport('http', report.date, report, markdown);
}

runBench(main);
