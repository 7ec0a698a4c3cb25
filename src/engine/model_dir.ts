// Reads a model directory written by train/ (manifest.json, catalog.json, users.json) and checks
// the parts serving relies on.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

import type { CalibrationParams } from '../calibration/calibrate';
import type { CatalogJson } from '../catalog/catalog_json';
import type { LoadProgress } from './load_progress';

export interface TensorEntry {
  dtype: 'float32' | 'int64' | 'int32';
  shape: number[];
  sha256: string;
}

/** The ranking score a model directory's model.pt carries (docs/dlrm.md); a manifest that names none has the multi-tower's. */
export const scorers = ['multitower', 'dlrm'] as const;
export type Scorer = (typeof scorers)[number];

export interface Manifest {
  manifest_version: number;
  version: string;
  scorer?: Scorer;
  embedding_dim: number;
  placements: string[];
  categories: string[];
  features: {
    hashing: { query: { buckets: number; max_tokens: number }; title: { buckets: number; max_tokens: number }; product: { buckets: number } };
    user: {
      categorical: Array<{ name: string; vocabulary?: string[]; buckets?: number[][]; reference_year?: number }>;
      numeric: { names: string[] };
    };
    ad: { categorical: Array<{ name: string; vocabulary?: string[] }>; numeric: { names: string[]; mean: number[]; std: number[] } };
    priors: { global_ctr: number; global_cvr: number };
    pair: { names: string[]; unknown: number[] };
  };
  calibration: { ctr: CalibrationParams; cvr: CalibrationParams };
  files: Record<string, TensorEntry>;
}

export interface ModelDir {
  dir: string;
  manifest: Manifest;
  catalog: CatalogJson;
  userIds: string[];
}

export class ModelDirError extends Error {}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (error) {
    throw new ModelDirError(`cannot read ${file}: ${(error as Error).message}`);
  }
}

/** The files serving reads; each must be listed in the manifest. */
const servedFiles = [
  'model.pt',
  'ad_embeddings.f32',
  'ad_categorical.i64',
  'ad_numeric.f32',
  'user_embeddings.f32',
  'user_category.f32',
  'user_advertiser_indptr.i32',
  'user_advertiser_index.i32',
  'user_advertiser_values.f32',
  'catalog.json',
  'users.json',
];

export function readModelDir(dir: string): ModelDir {
  const manifest = readJson<Manifest>(path.join(dir, 'manifest.json'));
  if (manifest.manifest_version !== 1) throw new ModelDirError(`${dir}: unsupported manifest_version ${manifest.manifest_version}`);
  const scorer: unknown = manifest.scorer ?? 'multitower';
  if (!scorers.includes(scorer as Scorer))
    throw new ModelDirError(`${dir}: manifest names scorer ${JSON.stringify(scorer)}; this engine serves ${scorers.join(', ')}`);
  for (const name of servedFiles) {
    if (!manifest.files[name]) throw new ModelDirError(`${dir}: manifest lists no ${name}`);
  }
  for (const [name, entry] of Object.entries(manifest.files)) {
    if (path.basename(name) !== name) throw new ModelDirError(`${dir}: manifest file name ${JSON.stringify(name)} is not a plain file name`);
    // train/ writes every listed file's hash, so a manifest without one was not written by it.
    const sha256: unknown = entry.sha256;
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) throw new ModelDirError(`${dir}: manifest has no SHA-256 for ${name}`);
  }
  const catalog = readJson<CatalogJson>(path.join(dir, 'catalog.json'));
  const ads = manifest.files['ad_embeddings.f32']!.shape[0];
  if (catalog.ads.length !== ads) throw new ModelDirError(`${dir}: catalog.json has ${catalog.ads.length} ads, ad_embeddings.f32 has ${ads}`);
  return { dir, manifest, catalog, userIds: readJson<{ ids: string[] }>(path.join(dir, 'users.json')).ids };
}

async function sha256Of(file: string, onBytes?: (bytes: number) => void): Promise<string> {
  const hash = createHash('sha256');
  // Streamed in 256 KiB chunks: reads run on libuv's pool and each chunk's hashing is a short slice
  // of the JS thread (about 0.25 ms at the 1 GB/s seen here; the event loop stalled at most 1-3 ms
  // over a 200 MB file, 3-5 ms with 1 MiB chunks), so requests keep being answered meanwhile.
  const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
  if (onBytes) stream.on('data', (chunk) => onBytes(chunk.length));
  await pipeline(stream, hash);
  return hash.digest('hex');
}

/**
 * Checks every file the manifest lists against its SHA-256, so that a file changed after training
 * (truncated, overwritten, half-copied) is refused before the engine loads it.
 */
export async function verifyModelFiles(model: ModelDir, progress?: LoadProgress): Promise<void> {
  const files = Object.entries(model.manifest.files);
  // A missing file counts as empty here; hashing it below names it.
  progress?.enter(
    'verifying files',
    files.reduce((bytes, [name]) => bytes + (statSync(path.join(model.dir, name), { throwIfNoEntry: false })?.size ?? 0), 0),
  );
  for (const [name, entry] of files) {
    let actual: string;
    try {
      actual = await sha256Of(path.join(model.dir, name), progress && ((bytes) => progress.advance(bytes)));
    } catch (error) {
      throw new ModelDirError(`cannot read ${path.join(model.dir, name)}: ${(error as Error).message}`);
    }
    if (actual !== entry.sha256)
      throw new ModelDirError(`${path.join(model.dir, name)} does not match its manifest: SHA-256 ${actual}, manifest ${entry.sha256}`);
  }
}

/**
 * Records a file's current SHA-256 in its directory's manifest, for tools that derive a model
 * directory from another by editing a file (the soak bench's catalog, test fixtures).
 */
export function rehashManifestFile(dir: string, name: string): void {
  const manifestPath = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  const entry = manifest.files[name];
  if (!entry) throw new ModelDirError(`${name} is not in ${manifestPath}`);
  entry.sha256 = createHash('sha256')
    .update(readFileSync(path.join(dir, name)))
    .digest('hex');
  writeFileSync(manifestPath, JSON.stringify(manifest));
}
