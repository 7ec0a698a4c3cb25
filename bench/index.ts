// `npm run bench -- [scenario] [options]`: one entry point for the benchmarks.
//   http (default)  HTTP ad path vs /livez and batching off: closed loop, open loop at fixed rates,
//                   CPU per request, time per stage, roofline (bench/run.ts)
//   engine          the engine without HTTP: index kinds, fusion modes, recall vs exact (bench/engine.ts)
//   precision       fusionPrecision fp32 vs bf16: CTR AUC on the model's test rows, |ΔpCTR|, fusion speed (bench/precision.ts)
//   saturation      fixed-rate steps to the knee, unloaded and WebSocket runs, SVG plot (bench/saturation.ts)
//   idle            CPU per request at a fixed rate vs at saturation, idle CPU, cores per thread group (bench/idle.ts)
//   catalog-scale   first start (seed, whole read) and restart (snapshot) of a catalog, then req/s (bench/catalog_scale.ts)
//   soak            millions of events through the local ledger while ads are served, then kill -9 and recovery (bench/soak.ts)
import { existsSync } from 'node:fs';
import path from 'node:path';

import { projectRoot } from '../src/paths';

const scenarios: Record<string, string> = {
  http: './run',
  engine: './engine',
  precision: './precision',
  saturation: './saturation',
  idle: './idle',
  soak: './soak',
  'catalog-scale': './catalog_scale',
};

const requested = process.argv[2] && !process.argv[2].startsWith('-') ? process.argv.splice(2, 1)[0]! : 'http';
const target = scenarios[requested];
if (!target) {
  process.stderr.write(`bench: unknown scenario ${JSON.stringify(requested)}; choose one of ${Object.keys(scenarios).join(', ')}\n`);
  process.exit(2);
}
const modelFlag = process.argv.indexOf('--model');
const modelDir = path.resolve(projectRoot, modelFlag >= 0 ? (process.argv[modelFlag + 1] ?? '') : 'models/demo');
if (!existsSync(path.join(modelDir, 'manifest.json'))) {
  process.stderr.write(
    `bench: no model at ${modelDir}; train one first, e.g. npm run train -- --preset large --out ${path.relative(projectRoot, modelDir)} (1.05M ads, about 5 minutes)\n`,
  );
  process.exit(2);
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
require(target);
