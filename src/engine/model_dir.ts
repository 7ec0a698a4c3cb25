// Reads a model directory written by train/ (manifest.json, ad_ids.txt, users.json) and checks
// the parts serving relies on. The directory holds the model and, keyed by ad id, the embeddings and
// features of the ads it was trained on; the catalog that serves comes from the catalog store
// (catalog.jsonl, when present, is only what a new store is seeded with).
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

import type { CalibrationParams } from '../calibration/calibrate';
import { PackedStrings } from '../catalog/packed_strings';
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
  /** Campaign ids in the order of the campaign codes the model was trained with (a DLRM reads them as id rows); absent in older directories. */
  campaigns?: string[];
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
  /** Id of the ad in each row of the ad tensors; they ascend bytewise. */
  adIds: PackedStrings;
  userIds: string[];
  /** The catalog.jsonl a new catalog store is seeded with, when the directory has one. */
  seedCatalog?: { file: string; sha256: string };
}

export class ModelDirError extends Error {}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (error) {
    throw new ModelDirError(`cannot read ${file}: ${(error as Error).message}`);
  }
}

/** The catalog a new store is seeded with, when a model directory has one. */
const seedCatalogFile = 'catalog.jsonl';

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
  'ad_ids.txt',
  'users.json',
];

/** Throws unless the ids ascend bytewise (so they are unique, and join with the store's id order). */
function checkAscending(ids: PackedStrings, file: string): void {
  for (let row = 1; row < ids.length; row++) {
    if (Buffer.compare(ids.utf8At(row - 1)!, ids.utf8At(row)!) >= 0)
      throw new ModelDirError(`${file}: ad ids must ascend, but line ${row + 1} (${ids.at(row)}) does not come after ${ids.at(row - 1)}`);
  }
}

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
  const idsFile = path.join(dir, 'ad_ids.txt');
  let adIds: PackedStrings;
  try {
    adIds = PackedStrings.fromLines(readFileSync(idsFile), idsFile);
  } catch (error) {
    throw new ModelDirError(`cannot read ${idsFile}: ${(error as Error).message}`);
  }
  const ads = manifest.files['ad_embeddings.f32']!.shape[0];
  if (adIds.length !== ads) throw new ModelDirError(`${dir}: ad_ids.txt has ${adIds.length} ads, ad_embeddings.f32 has ${ads}`);
  checkAscending(adIds, idsFile);
  const seed = manifest.files[seedCatalogFile];
  return {
    dir,
    manifest,
    adIds,
    userIds: readJson<{ ids: string[] }>(path.join(dir, 'users.json')).ids,
    ...(seed ? { seedCatalog: { file: path.join(dir, seedCatalogFile), sha256: seed.sha256 } } : {}),
  };
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
  // The seed catalog is not served from: it is checked when a store is seeded with it (verifySeedCatalog).
  const files = Object.entries(model.manifest.files).filter(([name]) => name !== seedCatalogFile);
  // A missing file counts as empty here; hashing it below names it.
  progress?.enter(
    'verifying files',
    files.reduce((bytes, [name]) => bytes + (statSync(path.join(model.dir, name), { throwIfNoEntry: false })?.size ?? 0), 0),
  );
  for (const [name, entry] of files) await verifyFile(path.join(model.dir, name), entry.sha256, progress && ((bytes) => progress.advance(bytes)));
}

async function verifyFile(file: string, sha256: string, onBytes?: (bytes: number) => void): Promise<void> {
  let actual: string;
  try {
    actual = await sha256Of(file, onBytes);
  } catch (error) {
    throw new ModelDirError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (actual !== sha256) throw new ModelDirError(`${file} does not match its manifest: SHA-256 ${actual}, manifest ${sha256}`);
}

/** Checks the model's catalog.jsonl against its manifest before a store is seeded with it. */
export async function verifySeedCatalog(model: ModelDir): Promise<void> {
  if (model.seedCatalog) await verifyFile(model.seedCatalog.file, model.seedCatalog.sha256);
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
