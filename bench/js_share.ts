// `node --expose-gc dist/bench/js_share.js [--model dir] [--requests n] [--rounds r] [--baseline distDir]`:
// the JavaScript share of an ad decision, without the engine's time. It scores `requests` bench
// requests once with the real engine, then replays those recorded engine results through the whole
// decision (parse, exclusions, calibration, quality, auction, encoding with sealed tokens, metrics)
// `rounds` times and reports the median µs per request, with this build's mean time per JS stage.
// `--baseline` names another build's dist/ folder (inside this checkout, e.g. a copy of an older
// commit's dist/): its decision runs on the same recorded results, rounds interleaved with this
// build's, so the two are compared under the same load.
import path from 'node:path';
import { parseArgs } from 'node:util';

import type { MetricValueWithName } from 'prom-client';

import { loadConfig } from '../src/config';
import { addon, type NativeEngine, nativeGcmSealerOf, type ScoreResult } from '../src/engine/addon';
import { readModelDir } from '../src/engine/model_dir';
import { openServing, type Serving } from '../src/engine/serving';
import { createMetrics, type Metrics } from '../src/metrics';
import { type SigningKey, signEventToken, signingKeyOf } from '../src/money/event_token';
import { Ledger } from '../src/money/ledger';
import { Money } from '../src/money/money';
import { LocalSpendStore } from '../src/money/spend_store';
import { type DecisionContext, decideAds } from '../src/pipeline/ad_decision';
import { systemClock } from '../src/pipeline/clock';
import { DecisionScratch } from '../src/pipeline/scratch';
import { projectRoot } from '../src/paths';
import { benchTempDir, gitCommit, machineInfo, median, runBench, writeReport } from './report';
import { benchRequests } from './requests';

const { values: options } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    requests: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '30' },
    baseline: { type: 'string' },
  },
});

type Decide = (body: Uint8Array, context: DecisionContext) => Promise<{ winners: number }>;

let winnersServed = 0;
let decisionsMade = 0;

interface Pipeline {
  name: string;
  decide: Decide;
  context: DecisionContext;
  /** Wall and CPU (user + system) µs per request of each counted round. */
  roundMicros: number[];
  cpuMicros: number[];
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/** The serving model with its engine replaced by one answering each body with its recorded result. */
function replaying(serving: Serving, recorded: ReadonlyMap<Uint8Array, ScoreResult>): Serving {
  const score: NativeEngine['score'] = (bytes) => Promise.resolve(recorded.get(bytes)!);
  return { ...serving, engine: Object.create(serving.engine, { score: { value: score } }) as NativeEngine };
}

/** CPU µs to seal one event token (median of `rounds` runs of 2000), and the mean winners per request of the replay. */
function sealingMicros(key: SigningKey, rounds: number): { cpuMicrosPerToken: number; winnersPerRequest: number } {
  const fields = {
    requestId: 'bench-123',
    adId: 'ad-0001234',
    slot: 0,
    bidType: 0,
    priceMicros: 1_234_567,
    issuedMs: Date.now(),
    expiresMs: Date.now() + 3_600_000,
    userId: 'u0001234',
    pCtr: 0.0123,
    pCvr: 0.0456,
    placement: 'Search',
    modelVersion: 'demo-c1b0af01f4ef',
  };
  const perToken: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const cpu = process.cpuUsage();
    for (let i = 0; i < 2000; i++) signEventToken(fields, key);
    const { user, system } = process.cpuUsage(cpu);
    if (round > 0) perToken.push((user + system) / 2000);
  }
  return { cpuMicrosPerToken: median(perToken), winnersPerRequest: winnersServed / decisionsMade };
}

/** Mean µs of each of the decision's own stages, from the stage histogram's sums and counts. */
async function stageMeans(metrics: Metrics): Promise<Record<string, number>> {
  const histogram = await metrics.registry.getSingleMetric('adserve_stage_duration_seconds')!.get();
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const { metricName, labels, value } of histogram.values as Array<MetricValueWithName<string>>) {
    const stage = String(labels.stage);
    if (metricName?.endsWith('_sum')) sums.set(stage, value);
    if (metricName?.endsWith('_count')) counts.set(stage, value);
  }
  const means: Record<string, number> = {};
  for (const stage of ['exclusions', 'calibrate', 'quality', 'auction', 'encode']) means[stage] = ((sums.get(stage) ?? 0) / (counts.get(stage) || 1)) * 1e6;
  return means;
}

async function main(): Promise<void> {
  addon.configure({ workerThreads: 1, computeThreads: 1, queueCapacity: 100_000 });
  const config = loadConfig({});
  const dataDir = benchTempDir('js-share-');
  const spend = new LocalSpendStore(
    await Ledger.open(dataDir, {
      snapshotEvents: config.ledgerSnapshotEvents,
      eventRetentionMs: (config.eventTokenTtlSeconds + config.attributionWindowSeconds) * 1000,
      reportRetentionHours: config.reportRetentionDays * 24,
    }),
    config.attributionWindowSeconds * 1000,
  );
  const serving = await openServing(readModelDir(path.resolve(projectRoot, options.model!)), config, new Money(spend));
  const bodies = benchRequests(Number(options.requests));
  const recorded = new Map<Uint8Array, ScoreResult>();
  for (const body of bodies) recorded.set(body, await serving.engine.score(body, 1000, new Uint32Array(0)));
  const replay = replaying(serving, recorded);
  const build = addon.buildInfo();
  const signingSecret = Buffer.from('js-share-bench-key');
  // Sealed as the daemon seals (src/main.ts).
  const signingKey = signingKeyOf(signingSecret, nativeGcmSealerOf);

  // Pacing draws from a seeded sequence, so both builds see the same exclusions.
  const context: DecisionContext = {
    config,
    serving: replay,
    signingKey,
    metrics: createMetrics(build, 'bench'),
    clock: systemClock,
    random: seeded(1),
    scratch: new DecisionScratch(),
  };
  const pipelines: Pipeline[] = [{ name: 'this build', decide: decideAds, context, roundMicros: [], cpuMicros: [] }];
  if (options.baseline) {
    const root = path.resolve(options.baseline);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const baseline = require(path.join(root, 'src', 'pipeline', 'ad_decision.js')) as { decideAds: Decide };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const baselineMetrics = require(path.join(root, 'src', 'metrics.js')) as { createMetrics: typeof createMetrics };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const baselineTokens = require(path.join(root, 'src', 'money', 'event_token.js')) as { signingKeyOf: typeof signingKeyOf };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const baselineAddon = require(path.join(root, 'src', 'engine', 'addon.js')) as { nativeGcmSealerOf?: typeof nativeGcmSealerOf };
    // Builds before the stage split read only the fields they know and take Math.random for pacing.
    // Each build seals with its own key object: how a key hands out salts is the build's own.
    const baselineContext = {
      ...context,
      metrics: baselineMetrics.createMetrics(build, 'bench') as unknown as Metrics,
      signingKey: baselineTokens.signingKeyOf(signingSecret, baselineAddon.nativeGcmSealerOf) as unknown as SigningKey,
      scratch: new DecisionScratch(),
    };
    pipelines.push({
      name: `baseline (${path.relative(projectRoot, root)})`,
      decide: baseline.decideAds,
      context: baselineContext,
      roundMicros: [],
      cpuMicros: [],
    });
  }

  const rounds = Number(options.rounds);
  const gc = (globalThis as { gc?: () => void }).gc;
  // Round 0 of each pipeline warms V8 up and is not counted.
  for (let round = 0; round <= rounds; round++) {
    for (let p = 0; p < pipelines.length; p++) {
      const pipeline = pipelines[(round + p) % pipelines.length]!;
      gc?.();
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (const body of bodies) {
        const { winners } = await pipeline.decide(body, pipeline.context);
        winnersServed += winners;
        decisionsMade++;
      }
      // Values pending in bulk metrics are part of the cost: flushed inside the timed window.
      await pipeline.context.metrics.registry.metrics();
      const micros = ((performance.now() - started) * 1000) / bodies.length;
      const { user, system } = process.cpuUsage(cpu);
      if (round > 0) {
        pipeline.roundMicros.push(micros);
        pipeline.cpuMicros.push((user + system) / bodies.length);
      }
    }
  }

  const rows = pipelines.map(({ name, roundMicros, cpuMicros }) => ({
    name,
    medianCpuMicros: median(cpuMicros),
    minCpuMicros: Math.min(...cpuMicros),
    medianWallMicros: median(roundMicros),
    minWallMicros: Math.min(...roundMicros),
    cpuMicrosPerRound: cpuMicros,
  }));
  // Round r of the two builds ran back to back, so their ratio shows how far the load moved between builds.
  const pairedRatios = pipelines.length === 2 ? pipelines[0]!.cpuMicros.map((micros, round) => micros / pipelines[1]!.cpuMicros[round]!) : [];
  const stages = await stageMeans(context.metrics);
  const sealing = sealingMicros(signingKey, rounds);
  const date = new Date().toISOString();
  const report = {
    date,
    commit: gitCommit(),
    machine: machineInfo(),
    model: options.model,
    requests: bodies.length,
    rounds,
    rows,
    pairedRatios,
    stageMeanMicros: stages,
    sealing,
  };
  const lines = [
    `# JS share of an ad decision (${date})`,
    '',
    `Commit ${report.commit}, model ${options.model}, ${bodies.length} recorded engine results replayed ${rounds} times per build (interleaved), gc between rounds.`,
    `Machine: ${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}.`,
    '',
    '| build | CPU µs / request, median | min | wall µs / request, median | min |',
    '|---|---|---|---|---|',
    ...rows.map(
      (row) =>
        `| ${row.name} | ${row.medianCpuMicros.toFixed(1)} | ${row.minCpuMicros.toFixed(1)} | ${row.medianWallMicros.toFixed(1)} | ${row.minWallMicros.toFixed(1)} |`,
    ),
    '',
  ];
  if (rows.length === 2) {
    const sorted = [...pairedRatios].sort((a, b) => a - b);
    const quartile = (q: number): string => sorted[Math.floor(q * (sorted.length - 1))]!.toFixed(3);
    lines.push(
      `This build / baseline, median CPU: ${(rows[0]!.medianCpuMicros / rows[1]!.medianCpuMicros).toFixed(3)}×; per round (the two builds back to back): median ${median(pairedRatios).toFixed(3)}×, quartiles ${quartile(0.25)}–${quartile(0.75)}×, ${pairedRatios.filter((ratio) => ratio < 1).length} of ${pairedRatios.length} rounds under 1.`,
      '',
    );
  }
  lines.push(
    "This build's own stages, mean wall µs per request over every round (adserve_stage_duration_seconds; encode includes event-token sealing):",
    '',
    `| ${Object.keys(stages).join(' | ')} |`,
    `|${Object.keys(stages)
      .map(() => '---|')
      .join('')}`,
    `| ${Object.values(stages)
      .map((micros) => micros.toFixed(1))
      .join(' | ')} |`,
    '',
    `Event-token sealing (src/money/event_token.ts), measured alone: ${sealing.cpuMicrosPerToken.toFixed(1)} CPU µs per token, ${sealing.winnersPerRequest.toFixed(2)} winners per request here, so about ${(sealing.cpuMicrosPerToken * sealing.winnersPerRequest).toFixed(1)} µs of each request's CPU.`,
    '',
  );
  writeReport('js-share', date, report, lines.join('\n'));
  serving.engine.close();
}

runBench(main);
