// The roofline line of the HTTP benchmark: this machine's roofs (fp32 FMA throughput, read
// bandwidth; bench/peak.cpp, compiled here with -march=native and run in the same benchmark run),
// and the work the engine does per request, so that achieved GFLOP/s of fusion and GB/s of the IVF
// scan can be set against them.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Config } from '../src/config';
import { projectRoot } from '../src/paths';

export interface Peak {
  isa: string;
  threads: number;
  /** Per second of the measuring thread's own CPU time. */
  fmaGflopsOneCore: number;
  fmaGflopsAllThreads: number;
  workingSetBytes: number;
  /** Reading a buffer the size of the index's codes, which may fit in the caches. */
  readGBpsWorkingSetOneCore: number;
  /** Reading 256 MiB, beyond any cache. */
  readGBpsDramOneCore: number;
  readGBpsDramAllThreads: number;
}

/** Compiles bench/peak.cpp into build/bench/ where the binary is missing or older, and runs it with `args`. */
function runPeak(args: string[]): unknown {
  const source = path.join(projectRoot, 'bench', 'peak.cpp');
  const binary = path.join(projectRoot, 'build', 'bench', 'peak');
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    mkdirSync(path.dirname(binary), { recursive: true });
    execFileSync('g++', ['-O3', '-march=native', '-ffp-contract=fast', '-std=gnu++17', '-pthread', '-o', binary, source], { stdio: 'inherit' });
  }
  return JSON.parse(execFileSync(binary, args, { encoding: 'utf8' }));
}

export function measurePeak(workingSetBytes: number): Peak {
  return runPeak([String(os.cpus().length), String(Math.round(workingSetBytes))]) as Peak;
}

/** Median CPU µs of one memory-bound task over `bytes`, back to back and after each `sleepMicros` asleep. */
export interface IdlePenalty {
  bytes: number;
  sleepMicros: number;
  backToBackMicros: number;
  afterSleepMicros: number;
}

export function measureIdlePenalty(bytes: number, sleepMicros: number): IdlePenalty {
  return runPeak(['idle', String(Math.round(bytes)), String(Math.round(sleepMicros))]) as IdlePenalty;
}

/** Output width of each fusion layer and head, read from the TorchScript model's weights. */
export interface FusionShape {
  /** [out, in] of fusion.0, fusion.2, fusion.4 (the MLP's linear layers, in order). */
  layers: Array<[number, number]>;
  /** Total outputs of the heads (CTR and CVR: 2) and their input width. */
  heads: [number, number];
}

/** Reads the fusion MLP's layer shapes from model.pt with the training environment's Python. */
export function readFusionShape(modelDir: string): FusionShape {
  const script = [
    'import json, sys, torch',
    "shapes = {k: list(v.shape) for k, v in torch.jit.load(sys.argv[1], map_location='cpu').state_dict().items() if k.endswith('.weight')}",
    'print(json.dumps(shapes))',
  ].join('\n');
  const shapes = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, path.join(modelDir, 'model.pt')], { encoding: 'utf8' })) as Record<
    string,
    [number, number]
  >;
  const layers = Object.keys(shapes)
    .filter((name) => /^fusion\.\d+\.weight$/.test(name))
    .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]))
    .map((name) => shapes[name]!);
  const ctr = shapes['ctr_head.weight'];
  const cvr = shapes['cvr_head.weight'];
  if (layers.length === 0 || !ctr || !cvr)
    throw new Error(`model.pt has no fusion.*.weight / ctr_head / cvr_head weights (found ${Object.keys(shapes).join(', ')})`);
  return { layers, heads: [ctr[0] + cvr[0], ctr[1]] };
}

/**
 * FLOPs (2 per multiply-add) of scoring one candidate. 'precomputed' (native/engine/engine.cpp
 * Engine::fuse): W_ad·E_ad of the first layer is cached per ad and W_user·E_user, W_ctx·E_ctx are
 * computed once per request, leaving per candidate the user·ad and context·ad dots, the dots and
 * pair-feature columns of the first layer, the later layers and the heads. 'model': the whole MLP
 * per candidate plus its three dots.
 */
export function fusionFlopsPerCandidate(shape: FusionShape, fusion: Config['fusion'], embeddingDim: number): number {
  const [first, ...rest] = shape.layers;
  const [hidden, inputs] = first!;
  const later = rest.reduce((sum, [out, input]) => sum + out * input, 0) + shape.heads[0] * shape.heads[1];
  const perCandidateFirst = fusion === 'precomputed' ? (inputs - 3 * embeddingDim) * hidden : inputs * hidden;
  const dots = (fusion === 'precomputed' ? 2 : 3) * embeddingDim;
  return 2 * (dots + perCandidateFirst + later);
}

/** What the daemon's "engine ready" log line says about the index it built. */
export interface EngineInfo {
  ads: number;
  index: string;
  /** The precomputed fusion's hidden-layer precision and kernel variant ('' for TorchScript fusion). */
  fusionPrecision: string;
  fusionKernel: string;
}

export function engineInfo(daemonOutput: string): EngineInfo | undefined {
  const line = /\{[^\n]*"msg":"engine ready"[^\n]*\}/.exec(daemonOutput)?.[0];
  if (!line) return undefined;
  const { ads, index, fusionPrecision, fusionKernel } = JSON.parse(line) as EngineInfo;
  return { ads, index, fusionPrecision, fusionKernel };
}

/**
 * Bytes of ad vectors the retrieve stage reads per query, estimated: the engine counts no scanned
 * lists or codes, so this is nprobe x the mean list length (ads / nlist) x bytes per vector, with
 * nprobe chosen as native/engine/ann_index.cpp AnnIndex::autoNprobe does when not configured. It
 * leaves out the coarse quantizer, the exact re-rank of the 8-bit scan's shortlist and keyword
 * matches. Undefined for HNSW and IVF-PQ, whose reads this simple model does not cover.
 */
export function scanBytesPerQuery(info: Pick<EngineInfo, 'ads' | 'index'>, config: Pick<Config, 'annCandidates'>, embeddingDim: number): number | undefined {
  if (info.index.startsWith('Flat')) return info.ads * embeddingDim * 4;
  const ivf = /^IVF(\d+),Flat,nprobe=(auto|\d+)(,scan=sq8)?/.exec(info.index);
  if (!ivf) return undefined;
  const nlist = Number(ivf[1]);
  const k = Math.min(config.annCandidates, info.ads);
  const nprobe = ivf[2] === 'auto' ? Math.min(nlist, Math.max(Math.ceil((8 * k * nlist) / info.ads), Math.ceil(nlist / 24))) : Number(ivf[2]);
  return nprobe * (info.ads / nlist) * embeddingDim * (ivf[3] ? 1 : 4);
}
