// `npm run bench -- precision [--model dir] [--every n] [--requests n] [--rounds r] [--threads t]`: fusionPrecision fp32
// against bf16 and int16, through the engine.
// Quality: the model's held-out test impressions (the rows of its report.json, exported by
// bench/test_rows.py) are scored by an engine of each precision; CTR AUC of each and the |ΔpCTR|
// distribution of each reduced precision against fp32. Only a block of ads is eligible at a time, and each row's score is read
// off its own ad among the candidates (a candidate's score does not depend on the others).
// Speed: the same bench requests as bench/engine.ts (1000 retrieved, 300 scored, flat index),
// rounds alternating the precisions; fusion (score stage) µs per request and GFLOP/s.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { defaults } from '../src/config';
import { addon, engineStages, type NativeEngine } from '../src/engine/addon';
import { adHistory, type EngineSettings, openEngine } from '../src/engine/engine';
import { catalogFromFile } from '../src/engine/model_catalog';
import { readModelDir } from '../src/engine/model_dir';
import { lightWeights } from '../src/engine/serving';
import { projectRoot } from '../src/paths';
import { type AdRequestSpec, encodeAdRequest } from '../src/protocol/encode_request';
import { gitCommit, machineInfo, median, runBench, writeReport } from './report';
import { benchRequests } from './requests';
import { fusionFlopsPerCandidate, readFusionShape } from './roofline';

const { values: options } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    /** Every n-th test row (1: all of them). */
    every: { type: 'string', default: '1' },
    requests: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
  },
});

type Precision = Exclude<NonNullable<EngineSettings['fusionPrecision']>, 'auto'>;
const precisions: Precision[] = ['fp32', 'bf16', 'int16'];
/** Each measured against fp32. */
const reduced = precisions.filter((p) => p !== 'fp32');
const byPrecision = <T>(value: (p: Precision) => T): Record<Precision, T> => Object.fromEntries(precisions.map((p) => [p, value(p)])) as Record<Precision, T>;

interface TestRow extends Omit<AdRequestSpec, 'timestampMs'> {
  timestampMs: number;
  ad: number;
  click: boolean;
}

/** The test rows of the model's report, exported once per model version into build/bench/. */
function testRows(modelDir: string, version: string): TestRow[] {
  const file = path.join(projectRoot, 'build', 'bench', `test-rows-${version}.json`);
  if (!existsSync(file)) execFileSync('/usr/bin/python3', [path.join(projectRoot, 'bench', 'test_rows.py'), modelDir, file], { stdio: 'inherit' });
  const exported = JSON.parse(readFileSync(file, 'utf8')) as { model: string; rows: TestRow[] };
  if (exported.model !== version) throw new Error(`${file} was exported from model ${exported.model}, not ${version}`);
  return exported.rows;
}

/** Area under the ROC curve of `scores` against `labels`, ties counted half (Mann-Whitney). */
function auc(scores: Float64Array, labels: boolean[]): number {
  const order = Array.from(scores.keys()).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let start = 0; start < order.length;) {
    let end = start;
    while (end < order.length && scores[order[end]!] === scores[order[start]!]) end++;
    const meanRank = (start + end + 1) / 2;
    for (let i = start; i < end; i++) {
      if (labels[order[i]!]) {
        positives++;
        rankSum += meanRank;
      }
    }
    start = end;
  }
  const negatives = order.length - positives;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

const quantile = (sorted: Float64Array, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

async function main(): Promise<void> {
  addon.configure({ workerThreads: 1, computeThreads: Number(options.threads), queueCapacity: 100_000 });
  const modelDir = path.resolve(projectRoot, options.model!);
  const model = readModelDir(modelDir);
  const loaded = catalogFromFile(model);
  const { catalog } = loaded;
  const history = adHistory(model);
  const base: Omit<EngineSettings, 'annCandidates' | 'scoreCandidates'> = {
    index: { kind: 'flat' },
    fusion: 'precomputed',
    keywordCandidates: 0,
    batching: { maxBatch: 32, maxDelayUs: 200, queueCapacity: 100_000 },
    light: lightWeights(defaults),
  };

  // Quality.
  const every = Number(options.every);
  const rows = testRows(modelDir, model.manifest.version).filter((_, i) => i % every === 0);
  const blockAds = 64;
  const quality = {} as Record<Precision, NativeEngine>;
  for (const p of precisions)
    quality[p] = await openEngine(model, loaded, history, { ...base, fusionPrecision: p, annCandidates: blockAds, scoreCandidates: blockAds });
  const kernels = byPrecision((p) => quality[p].stats().fusionKernel);
  const everyAd = Uint32Array.from({ length: catalog.size }, (_, i) => i);
  for (const p of precisions) quality[p].setEligibility(everyAd, new Uint8Array(catalog.size));
  const rowsOfBlock = new Map<number, number[]>();
  rows.forEach((row, i) => {
    const block = Math.floor(row.ad / blockAds);
    rowsOfBlock.set(block, [...(rowsOfBlock.get(block) ?? []), i]);
  });
  const pctr = byPrecision(() => new Float64Array(rows.length).fill(NaN));
  const qualityStarted = Date.now();
  for (const [block, members] of rowsOfBlock) {
    const ads = everyAd.subarray(block * blockAds, Math.min(catalog.size, (block + 1) * blockAds));
    for (const p of precisions) quality[p].setEligibility(ads, new Uint8Array(ads.length).fill(1));
    await Promise.all(
      members.flatMap((i) => {
        const { ad, click: _click, timestampMs, ...spec } = rows[i]!;
        const body = encodeAdRequest({ ...spec, timestampMs: BigInt(timestampMs) });
        return precisions.map(async (p) => {
          const result = await quality[p].score(body, 60_000);
          const j = result.adIndex.indexOf(ad);
          if (j >= 0 && !result.degraded) pctr[p][i] = sigmoid(result.ctrLogit[j]!);
        });
      }),
    );
    for (const p of precisions) quality[p].setEligibility(ads, new Uint8Array(ads.length));
  }
  for (const p of precisions) quality[p].close();
  const scored = rows.flatMap((_, i) => (precisions.some((p) => Number.isNaN(pctr[p][i]!)) ? [] : [i]));
  const labels = scored.map((i) => rows[i]!.click);
  const aucOf = (p: Precision): number =>
    auc(
      Float64Array.from(scored, (i) => pctr[p][i]!),
      labels,
    );
  const ctrAuc = byPrecision(aucOf);
  const spread = (values: Float64Array) => ({ p50: quantile(values, 0.5), p99: quantile(values, 0.99), max: values[values.length - 1]! });
  const deltaPctr = byPrecision((p) => spread(Float64Array.from(scored, (i) => Math.abs(pctr[p][i]! - pctr.fp32[i]!)).sort()));
  const relativeDelta = byPrecision((p) => spread(Float64Array.from(scored, (i) => Math.abs(pctr[p][i]! - pctr.fp32[i]!) / pctr.fp32[i]!).sort()));
  const meanPctr = byPrecision((p) => scored.reduce((sum, i) => sum + pctr[p][i]!, 0) / scored.length);
  process.stdout.write(
    `quality: ${scored.length} of ${rows.length} rows in ${((Date.now() - qualityStarted) / 1000).toFixed(0)} s, AUC ${precisions.map((p) => `${p} ${ctrAuc[p].toFixed(6)}`).join(' ')}\n`,
  );

  // Speed.
  const shape = readFusionShape(modelDir);
  const flopsPerCandidate = fusionFlopsPerCandidate(shape, 'precomputed', model.manifest.embedding_dim);
  const bodies = benchRequests(Number(options.requests));
  const rounds = byPrecision((): Array<{ fusionUs: number; gflops: number; cpuUs: number }> => []);
  for (let round = 0; round < Number(options.rounds); round++) {
    for (const p of precisions) {
      const engine = await openEngine(model, loaded, history, { ...base, fusionPrecision: p, annCandidates: 1000, scoreCandidates: 300 });
      let fusionNs = 0;
      let candidates = 0;
      let next = 0;
      const cpuBefore = process.cpuUsage();
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < bodies.length) {
            const result = await engine.score(bodies[next++]!, 10_000);
            fusionNs += result.stageNs[engineStages.indexOf('score')]! / result.batchSize;
            candidates += result.adIndex.length;
          }
        }),
      );
      const cpu = process.cpuUsage(cpuBefore);
      engine.close();
      rounds[p].push({
        fusionUs: fusionNs / bodies.length / 1000,
        gflops: (flopsPerCandidate * candidates) / fusionNs,
        cpuUs: (cpu.user + cpu.system) / bodies.length,
      });
    }
  }
  const speed = byPrecision((p) => ({
    fusionUs: median(rounds[p].map((r) => r.fusionUs)),
    gflops: median(rounds[p].map((r) => r.gflops)),
    cpuUs: median(rounds[p].map((r) => r.cpuUs)),
  }));

  const date = new Date().toISOString();
  const report = {
    date,
    commit: gitCommit(),
    machine: machineInfo(),
    options,
    model: model.manifest.version,
    kernels,
    quality: {
      rows: rows.length,
      scored: scored.length,
      clicks: labels.filter(Boolean).length,
      ctrAuc,
      aucChange: Object.fromEntries(reduced.map((p) => [p, ctrAuc[p] - ctrAuc.fp32])),
      meanPctr,
      deltaPctr,
      relativeDelta,
    },
    speed,
    rounds,
  };
  const e = (x: number): string => x.toExponential(2);
  const markdown = [
    `# Fusion precision, fp32 against ${reduced.join(' and ')}, ${date}`,
    '',
    `commit ${report.commit}; model ${options.model} (${model.manifest.version}, ${catalog.size} ads); ${report.machine.cpu} x${report.machine.cores}; ${options.threads} compute threads; hidden-layer kernels: ${precisions.map((p) => `${p} ${kernels[p]}`).join(', ')}.`,
    '',
    `Quality on the model's test rows (${every === 1 ? 'all' : `every ${every}th`} of them: ${rows.length}; ${scored.length} scored, the others' ads not admitted by the ad's targeting; ${report.quality.clicks} clicks), raw model pCTR through the engine:`,
    '',
    '| precision | CTR AUC | change against fp32 | mean pCTR | \\|ΔpCTR\\| p50 / p99 / max | relative to the fp32 pCTR: p50 / p99 / max |',
    '|---|---|---|---|---|---|',
    ...precisions.map((p) =>
      p === 'fp32'
        ? `| fp32 | ${ctrAuc.fp32.toFixed(6)} | | ${meanPctr.fp32.toFixed(6)} | | |`
        : `| ${p} | ${ctrAuc[p].toFixed(6)} | ${(ctrAuc[p] - ctrAuc.fp32).toExponential(2)} | ${meanPctr[p].toFixed(6)} | ` +
          `${e(deltaPctr[p].p50)} / ${e(deltaPctr[p].p99)} / ${e(deltaPctr[p].max)} | ${e(relativeDelta[p].p50)} / ${e(relativeDelta[p].p99)} / ${e(relativeDelta[p].max)} |`,
    ),
    '',
    `Speed (${bodies.length} bench requests, 64 in flight, flat index, 1000 retrieved, 300 scored; medians of ${options.rounds} rounds alternating the precisions; ${(flopsPerCandidate / 2).toFixed(0)} multiply-adds per candidate counted for each):`,
    '',
    '| precision | kernel | fusion µs/request | fusion GFLOP/s | CPU µs/request |',
    '|---|---|---|---|---|',
    ...precisions.map((p) => `| ${p} | ${kernels[p]} | ${speed[p].fusionUs.toFixed(0)} | ${speed[p].gflops.toFixed(1)} | ${speed[p].cpuUs.toFixed(0)} |`),
    '',
  ].join('\n');
  writeReport('precision', date, report, markdown);
}

runBench(main);
