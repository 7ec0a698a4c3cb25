// Opens the native engine over a model directory: turns the manifest into the addon's options and
// computes each ad's static lightweight-score prior.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import type { Catalog } from '../catalog/catalog';
import type { IvfScan } from '../config';
import { BidType } from '../protocol/schema';
import { addon, type AdKeys, type AdTargeting, type FusionPrecision, type NativeEngine, type NativeEngineOptions } from './addon';
import type { ModelDir, TensorEntry } from './model_dir';

export interface IndexSettings {
  kind: 'flat' | 'ivf' | 'hnsw' | 'ivfpq';
  nlist?: number;
  nprobe?: number;
  hnswM?: number;
  efSearch?: number;
  pqM?: number;
  /** IVF list scan: 8-bit codes re-ranked exactly (default) or the float vectors. */
  ivfScan?: IvfScan;
  /** The 8-bit scan's kernel, one of buildInfo().scanKernels (unset: the CPU's best); every kernel gives the same bits. */
  scanKernel?: string;
}

/** Weights of the lightweight score (docs/architecture.md, "Candidates: retrieval and the lightweight score"): a·sim + b·value + c·histCTR + d·quality. */
export interface LightWeights {
  similarity: number;
  value: number;
  ctr: number;
  quality: number;
  /** Expected eCPM (micros) at which the value term saturates at 1. */
  maxEcpmMicros: number;
}

export interface EngineSettings {
  index: IndexSettings;
  /** Directory where built FAISS indexes are kept between starts; absent: always build. */
  indexCacheDir?: string;
  fusion: 'precomputed' | 'model';
  /** Precision of the precomputed fusion's hidden layers (default fp32). */
  fusionPrecision?: FusionPrecision;
  /** Pins the hidden layers' dense-kernel variant ('amx', 'avx512bf16', 'avx512vnni', 'avx512', 'avx2', 'portable', as the precision offers them). Default: the machine's best. */
  fusionKernel?: string;
  annCandidates: number;
  /** Search placements: keyword-matched ads merged into the ANN candidates (engine default 100). */
  keywordCandidates?: number;
  scoreCandidates: number;
  batching: {
    maxBatch: number;
    maxDelayUs: number;
    queueCapacity: number;
    /** Batches scored side by side, each on a batcher thread of its own (engine default 1). */
    threads?: number;
  };
  light: LightWeights;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export function readFloats(file: string, entry: TensorEntry): Float32Array {
  const bytes = readFileSync(file);
  const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  if (values.length !== entry.shape.reduce((a, b) => a * b, 1)) throw new Error(`${file} does not match its manifest shape`);
  const bad = values.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) throw new Error(`${file} holds a non-finite value (${values[bad]}) at element ${bad}`);
  return values;
}

/** Historical CTR and CVR of each ad (feature-store aggregates, smoothed toward the global rates). */
export interface AdHistory {
  ctr: Float64Array;
  cvr: Float64Array;
}

export function adHistory(model: ModelDir): AdHistory {
  const numeric = model.manifest.features.ad.numeric;
  const entry = model.manifest.files['ad_numeric.f32']!;
  const values = readFloats(path.join(model.dir, 'ad_numeric.f32'), entry);
  const [ads, width] = entry.shape as [number, number];
  const column = (name: string): number => {
    const index = numeric.names.indexOf(name);
    if (index < 0) throw new Error(`manifest has no ad numeric feature ${name}`);
    return index;
  };
  const history = { ctr: new Float64Array(ads), cvr: new Float64Array(ads) };
  for (const [name, out] of [
    ['ctr_logit', history.ctr],
    ['cvr_logit', history.cvr],
  ] as const) {
    const c = column(name);
    for (let ad = 0; ad < ads; ad++) out[ad] = sigmoid(values[ad * width + c]! * numeric.std[c]! + numeric.mean[c]!);
  }
  return history;
}

/**
 * Static part of an ad's lightweight score: value (expected eCPM from the bid and historical rates,
 * saturating at maxEcpmMicros), historical CTR and landing-page quality.
 */
export function adPrior(ad: number, history: AdHistory, catalog: Catalog, weights: LightWeights): number {
  const ctr = history.ctr[ad]!;
  const bid = catalog.bidMicros[ad]!;
  const type = catalog.bidType[ad];
  const ecpm = type === BidType.Cpm ? bid : type === BidType.Cpc ? bid * ctr * 1000 : bid * ctr * history.cvr[ad]! * 1000;
  return weights.value * Math.min(ecpm / weights.maxEcpmMicros, 1) + weights.ctr * ctr + weights.quality * catalog.landingQuality[ad]!;
}

/** The feature contract of the model directory, in the form the addon takes. */
export function featureOptions(model: ModelDir): NativeEngineOptions['features'] {
  const { manifest } = model;
  const user = manifest.features.user.categorical;
  const vocabulary = (name: string): string[] => {
    const found = user.find((feature) => feature.name === name)?.vocabulary;
    if (!found) throw new Error(`manifest has no user feature ${name}`);
    return found;
  };
  const age = user.find((feature) => feature.name === 'age_bucket');
  return {
    referenceYear: age?.reference_year ?? 0,
    ageBuckets: (age?.buckets ?? []).flat(),
    countries: vocabulary('country'),
    languages: vocabulary('language'),
    categories: manifest.categories,
    queryBuckets: manifest.features.hashing.query.buckets,
    maxQueryTokens: manifest.features.hashing.query.max_tokens,
    productBuckets: manifest.features.hashing.product.buckets,
    userNumeric: manifest.features.user.numeric.names.length,
  };
}

/**
 * Campaign codes (AdKeys.campaign): a campaign the model was trained with keeps the code it was
 * trained under (`trained`, the manifest's campaigns: a DLRM reads it as an id row), whatever order
 * the store lists campaigns in; any other takes the next free code, in catalog order.
 */
export function campaignCodes(catalog: Catalog, trained: readonly string[] = []): Map<string, number> {
  const codes = new Map(trained.map((campaign, code) => [campaign, code]));
  for (const campaign of catalog.campaigns.keys()) if (!codes.has(campaign)) codes.set(campaign, codes.size);
  return codes;
}

function adKeys(catalog: Catalog, trained: readonly string[] | undefined): AdKeys {
  const code = campaignCodes(catalog, trained);
  return {
    campaign: Uint32Array.from(catalog.campaignId, (campaign) => code.get(campaign)!),
    advertiser: catalog.advertiserId,
    category: catalog.category,
    product: Array.from({ length: catalog.size }, (_, ad) => catalog.productId.at(ad)!),
  };
}

/** A catalog laid out in the model's rows, with the targeting of its ads (model_catalog.ts). */
export interface EngineCatalog {
  catalog: Catalog;
  targeting: AdTargeting[];
}

export function engineOptions(model: ModelDir, { catalog, targeting }: EngineCatalog, history: AdHistory, settings: EngineSettings): NativeEngineOptions {
  const { manifest, dir } = model;
  const tensor = (name: string) => ({ path: path.join(dir, name), ...manifest.files[name]! });
  return {
    modelPath: path.join(dir, 'model.pt'),
    adEmbeddings: tensor('ad_embeddings.f32'),
    adCategorical: tensor('ad_categorical.i64'),
    userEmbeddings: tensor('user_embeddings.f32'),
    userCategory: tensor('user_category.f32'),
    userAdvertiserIndptr: tensor('user_advertiser_indptr.i32'),
    userAdvertiserIndex: tensor('user_advertiser_index.i32'),
    userAdvertiserValues: tensor('user_advertiser_values.f32'),
    userIds: model.userIds,
    pairUnknown: manifest.features.pair.unknown,
    adPrior: Float32Array.from({ length: catalog.size }, (_, ad) => adPrior(ad, history, catalog, settings.light)),
    targeting,
    adKeys: adKeys(catalog, manifest.campaigns),
    fusion: fusionFor(model, settings.fusion),
    ...(settings.fusionPrecision !== undefined ? { fusionPrecision: settings.fusionPrecision } : {}),
    ...(settings.fusionKernel !== undefined ? { fusionKernel: settings.fusionKernel } : {}),
    similarityWeight: settings.light.similarity,
    annCandidates: settings.annCandidates,
    ...(settings.keywordCandidates !== undefined ? { keywordCandidates: settings.keywordCandidates } : {}),
    scoreCandidates: settings.scoreCandidates,
    features: featureOptions(model),
    index: settings.indexCacheDir ? { ...settings.index, cacheFile: indexCacheFile(settings.indexCacheDir, model, settings.index) } : settings.index,
    batching: settings.batching,
  };
}

/**
 * The configured fusion, except for a DLRM: it has no first fusion layer to split per ad, so it
 * always runs its TorchScript `score` ('model').
 */
export function fusionFor(model: ModelDir, configured: EngineSettings['fusion']): EngineSettings['fusion'] {
  return model.manifest.scorer === 'dlrm' ? 'model' : configured;
}

/** A cached index is named after everything that shapes it; search-time settings (nprobe, efSearch) are not among them. */
function indexCacheFile(cacheDir: string, model: ModelDir, index: IndexSettings): string {
  const { kind, nlist, hnswM, pqM } = index;
  const key = JSON.stringify({ embeddings: model.manifest.files['ad_embeddings.f32']!.sha256, kind, nlist, hnswM, pqM });
  return path.join(cacheDir, `${kind}-${createHash('sha256').update(key).digest('hex').slice(0, 24)}.faiss`);
}

export async function openEngine(model: ModelDir, catalog: EngineCatalog, history: AdHistory, settings: EngineSettings): Promise<NativeEngine> {
  return addon.openEngine(engineOptions(model, catalog, history, settings));
}
