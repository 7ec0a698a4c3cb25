// `node dist/bench/engine.js [--model dir] [--requests n] [--concurrency c] [--kinds flat,ivf,...] [--threads t] [--match 'a|b']`: the
// engine without HTTP. For each FAISS index kind it measures engine throughput (closed loop,
// `concurrency` requests in flight; 1000 candidates retrieved, 300 scored) with the mean time per
// request of each stage, and the recall of the scored candidates against exact search (the flat
// index) on the same requests, and writes JSON + Markdown to bench/results/. Flat is the baseline
// of the same run.
import path from 'node:path';
import { parseArgs } from 'node:util';

import { defaults } from '../src/config';
import { addon, engineStages } from '../src/engine/addon';
import { adHistory, type EngineSettings, type IndexSettings, openEngine } from '../src/engine/engine';
import { catalogFromFile } from '../src/engine/model_catalog';
import { readModelDir } from '../src/engine/model_dir';
import { lightWeights } from '../src/engine/serving';
import { projectRoot } from '../src/paths';
import { gitCommit, machineInfo, runBench, writeReport } from './report';
import { benchRequests } from './requests';

const { values: options } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    requests: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '64' },
    /** Index kinds to measure, e.g. flat,ivf,ivfpq where an HNSW build would take too long. */
    kinds: { type: 'string', default: 'flat,ivf,hnsw,ivfpq' },
    /** Engine compute threads: the whole box by default, as nothing else runs here. */
    threads: { type: 'string', default: '2' },
    /** Only the variants whose name contains one of these '|'-separated strings (all by default). */
    match: { type: 'string', default: '' },
  },
});

const variants: Array<{ name: string; index: IndexSettings; fusion: EngineSettings['fusion']; maxBatch?: number }> = [
  { name: 'flat, TorchScript fusion (baseline)', index: { kind: 'flat' }, fusion: 'model' },
  { name: 'flat, precomputed fusion', index: { kind: 'flat' }, fusion: 'precomputed' },
  { name: 'ivf, nprobe auto, 8-bit scan (default)', index: { kind: 'ivf' }, fusion: 'precomputed' },
  { name: 'ivf, nprobe auto, 8-bit scan, maxBatch 1', index: { kind: 'ivf' }, fusion: 'precomputed', maxBatch: 1 },
  { name: 'ivf, nprobe auto, float scan', index: { kind: 'ivf', ivfScan: 'float' }, fusion: 'precomputed' },
  { name: 'ivf, nprobe 16', index: { kind: 'ivf', nprobe: 16 }, fusion: 'precomputed' },
  { name: 'ivf, nprobe 96', index: { kind: 'ivf', nprobe: 96 }, fusion: 'precomputed' },
  { name: 'hnsw M 16, ef = k', index: { kind: 'hnsw', hnswM: 16 }, fusion: 'precomputed' },
  { name: 'ivfpq 16 x 8 bit, nprobe auto', index: { kind: 'ivfpq', pqM: 16 }, fusion: 'precomputed' },
];

async function main(): Promise<void> {
  addon.configure({ workerThreads: 1, computeThreads: Number(options.threads), queueCapacity: 100_000 });
  const model = readModelDir(path.resolve(projectRoot, options.model!));
  const catalog = catalogFromFile(model);
  const history = adHistory(model);
  const bodies = benchRequests(Number(options.requests));
  const concurrency = Number(options.concurrency);
  let exact: Int32Array[] = [];
  const rows = [];
  const kinds = new Set(options.kinds!.split(','));
  const matches = options.match!.split('|').filter((part) => part !== '');
  const chosen = variants.filter((variant) => kinds.has(variant.index.kind) && (matches.length === 0 || matches.some((part) => variant.name.includes(part))));
  for (const { name, index, fusion, maxBatch } of chosen) {
    const settings: EngineSettings = {
      index,
      fusion,
      fusionPrecision: defaults.fusionPrecision,
      annCandidates: 1000,
      scoreCandidates: 300,
      batching: { maxBatch: maxBatch ?? 32, maxDelayUs: 1000, queueCapacity: 100_000 },
      light: lightWeights(defaults),
    };
    const opened = Date.now();
    const engine = await openEngine(model, catalog, history, settings);
    const buildSeconds = (Date.now() - opened) / 1000;
    const results: Int32Array[] = new Array(bodies.length);
    // Each request's share of its batch's stage times, summed.
    const stageNs = new Float64Array(engineStages.length);
    let next = 0;
    const started = process.hrtime.bigint();
    const cpuBefore = process.cpuUsage();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < bodies.length) {
          const i = next++;
          const result = await engine.score(bodies[i]!, 10_000);
          results[i] = result.adIndex;
          result.stageNs.forEach((ns, stage) => (stageNs[stage] += ns / result.batchSize));
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // The whole process (JS thread, batcher, compute threads): on a shared box, CPU time is steadier than wall time.
    const cpu = process.cpuUsage(cpuBefore);
    const cpuUsPerRequest = (cpu.user + cpu.system) / bodies.length;
    const stats = engine.stats();
    engine.close();
    if (exact.length === 0) exact = results;
    const recall = (k: number): number => {
      let hit = 0;
      let total = 0;
      results.forEach((got, i) => {
        const truth = new Set(Array.from(exact[i]!.subarray(0, k)));
        total += truth.size;
        for (const ad of got) if (truth.has(ad)) hit++;
      });
      return hit / Math.max(1, total);
    };
    const stageUs = Object.fromEntries(engineStages.map((stage, i) => [stage, stageNs[i]! / bodies.length / 1000]));
    rows.push({
      name,
      index: stats.index,
      requestsPerSecond: bodies.length / seconds,
      cpuUsPerRequest,
      meanBatch: stats.requests / stats.batches,
      buildSeconds,
      recallAt100: recall(100),
      recallAt300: recall(300),
      precision: stats.fusionPrecision,
      stageUs,
    });
    process.stdout.write(
      `${name}: ${(bodies.length / seconds).toFixed(0)} req/s, ${cpuUsPerRequest.toFixed(0)} CPU us/req, recall@300 ${recall(300).toFixed(3)}\n`,
    );
  }
  const baseline = rows[0]!.requestsPerSecond;
  const date = new Date().toISOString();
  const report = { date, commit: gitCommit(), machine: machineInfo(), options, ads: catalog.catalog.size, rows };
  const markdown = [
    `# Engine benchmark (no HTTP), ${date}`,
    '',
    `commit ${report.commit}; model ${options.model} (${catalog.catalog.size} ads); ${report.machine.cpu} x${report.machine.cores}; ${options.threads} compute threads; fusionPrecision ${defaults.fusionPrecision} (the precomputed fusion's hidden layers ran ${[...new Set(rows.map((r) => r.precision).filter((p) => p !== ''))].join(', ')}); ${bodies.length} requests, ${concurrency} in flight, maxBatch 32 unless named; 1000 candidates retrieved and 300 scored per request. Recall is the share of the exact (flat) pipeline's scored candidates (its top 100 by lightweight score; all 300) that the variant also scores, on the same requests.`,
    '',
    '| variant | FAISS | req/s | vs baseline | CPU µs/req | mean batch | build s | recall of exact top-100 | recall of exact 300 |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.index} | ${r.requestsPerSecond.toFixed(0)} | ${(r.requestsPerSecond / baseline).toFixed(2)} | ${r.cpuUsPerRequest.toFixed(0)} | ${r.meanBatch.toFixed(1)} | ${r.buildSeconds.toFixed(1)} | ${r.recallAt100.toFixed(3)} | ${r.recallAt300.toFixed(3)} |`,
    ),
    '',
    "Mean time per request in each stage (µs; a batch's stage time shared among its requests):",
    '',
    `| variant | ${engineStages.join(' | ')} |`,
    `|---|${engineStages.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.name} | ${engineStages.map((stage) => r.stageUs[stage]!.toFixed(0)).join(' | ')} |`),
    '',
  ].join('\n');
  writeReport('engine', report.date, report, markdown);
}

runBench(main);
