// Typed face of the native addon (native/binding/addon.cpp). Invalid arguments throw synchronously;
// failures of asynchronous work reject. Every error carries a stable `code` (NativeErrorCode).
import { prepareNativeLoad } from '../config';
import type { TargetingCriterion } from '../catalog/catalog_json';
import type { GcmSealer, GcmSealerOf } from '../money/event_token';
import { addonPath } from '../paths';

/** The precomputed fusion's hidden-layer precision: 'auto' is bf16 where the CPU has AVX512_BF16, else int16 where it has AVX-512 VNNI, else fp32. */
export type FusionPrecision = 'fp32' | 'bf16' | 'int16' | 'auto';

export type NativeErrorCode = 'E_BAD_REQUEST' | 'E_INVALID_ARG' | 'E_QUEUE_FULL' | 'E_SHUTTING_DOWN' | 'E_MODEL' | 'E_INDEX' | 'E_NOMEM' | 'E_NATIVE';

export interface NativeError extends Error {
  code: NativeErrorCode;
}

export function isNativeError(error: unknown): error is NativeError {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('E_');
}

export interface BuildInfo {
  torch: string;
  faiss: string;
  flatbuffers: string;
  compiler: string;
  cuda: boolean;
  computeThreads: number;
  ompMaxThreads: number;
  workerThreads: number;
  /** The dense-kernel variants this CPU runs for each fusion precision, best first (what `fusionKernel` may name). */
  fusionKernels: Record<'fp32' | 'bf16' | 'int16', string[]>;
  /** The 8-bit IVF scan's kernels this CPU runs, best first (what `index.scanKernel` may name); they give the same bits. */
  scanKernels: string[];
}

export interface ThreadBudget {
  /** Engine threads running asynchronous work. */
  workerThreads?: number;
  /** libtorch intra-op and OpenMP threads. */
  computeThreads?: number;
  /** Jobs that may wait for an engine thread before submissions fail with E_QUEUE_FULL. */
  queueCapacity?: number;
  /** Tables from 2 MiB up on transparent huge pages (native/engine/huge_pages.h); read when an engine opens. */
  hugePages?: boolean;
}

/** Row-major [queries x k] hits over native memory; a missing hit has label -1. */
export interface SearchHits {
  scores: Float32Array;
  labels: Int32Array;
}

export interface VectorIndex {
  readonly dim: number;
  readonly size: number;
  /** Exact maximum-inner-product search of each query row, run on an engine thread. */
  search(queries: Float32Array, k: number): Promise<SearchHits>;
}

export interface TensorFileSpec {
  path: string;
  dtype: 'float32' | 'int64' | 'int32';
  shape: number[];
}

/** An ad's targeting in DNF: it matches when any rule has all its criteria satisfied (none negated matching). */
export interface AdTargeting {
  ad: number;
  rules: TargetingCriterion[][];
}

export interface TargetingFields {
  query?: string;
  geo?: string;
  device?: string;
  audiences?: string[];
  category?: string;
  product?: string;
  placement?: string;
}

export interface TargetingIndex {
  /** Ad indices (ascending) the request satisfies, untargeted ads included. */
  match(request: TargetingFields): Uint32Array;
}

/**
 * What a request's exclusions name each ad by, one entry per ad: its campaign's code (the numbering
 * engine.score's excludedCampaigns uses) and its advertiser, category and product ids (the strings
 * an AdRequest's block lists hold).
 */
export interface AdKeys {
  campaign: Uint32Array;
  advertiser: readonly string[];
  category: readonly string[];
  product: readonly string[];
}

export interface NativeEngineOptions {
  modelPath: string;
  adEmbeddings: TensorFileSpec;
  adCategorical: TensorFileSpec;
  userEmbeddings: TensorFileSpec;
  userCategory: TensorFileSpec;
  userAdvertiserIndptr: TensorFileSpec;
  userAdvertiserIndex: TensorFileSpec;
  userAdvertiserValues: TensorFileSpec;
  userIds: string[];
  pairUnknown: number[];
  /** Static lightweight-score part per ad index. */
  adPrior: Float32Array;
  /** Boolean targeting; ads not listed are untargeted. */
  targeting?: AdTargeting[];
  /** Every ad's keys for the requests' exclusions. */
  adKeys: AdKeys;
  /** 'precomputed' (default): W_ad·E_ad cached per ad, first fusion layer split; 'model': TorchScript score. */
  fusion?: 'precomputed' | 'model';
  /** 'fp32' (default), 'bf16', 'int16', or 'auto' (bf16 with AVX512_BF16, else int16 with AVX-512 VNNI, else fp32): the precomputed fusion's hidden layers (native/engine/dense_kernel.h). */
  fusionPrecision?: FusionPrecision;
  /** The hidden layers' DenseKernel variant; default the machine's best, unknown or unsupported ones fail the open. */
  fusionKernel?: string;
  similarityWeight?: number;
  annCandidates?: number;
  scoreCandidates?: number;
  /** Search placements: ads matching the query's keywords merged into the ANN candidates (default 100; 0 turns it off). */
  keywordCandidates?: number;
  features: {
    referenceYear: number;
    /** Flattened [low, high] age pairs. */
    ageBuckets: number[];
    countries: string[];
    languages: string[];
    categories: string[];
    queryBuckets: number;
    maxQueryTokens: number;
    productBuckets: number;
    userNumeric: number;
  };
  index: {
    kind: string;
    nlist?: number;
    nprobe?: number;
    hnswM?: number;
    efSearch?: number;
    pqM?: number;
    ivfScan?: string;
    scanKernel?: string;
    cacheFile?: string;
  };
  batching: { maxBatch?: number; maxDelayUs?: number; queueCapacity?: number; threads?: number };
}

/** Stage order of ScoreResult.stageNs. */
export const engineStages = ['parse', 'user', 'context', 'retrieve', 'light_score', 'score'] as const;

/** One request's candidates, ordered by lightweight score; logits are NaN when degraded. */
export interface ScoreResult {
  adIndex: Int32Array;
  light: Float32Array;
  ctrLogit: Float32Array;
  cvrLogit: Float32Array;
  /** Nanoseconds per stage of the request's batch, in engineStages order. */
  stageNs: Float64Array;
  batchSize: number;
  queueWaitNs: number;
  degraded: boolean;
}

export interface EngineStats {
  batches: number;
  requests: number;
  rejected: number;
  queued: number;
  ads: number;
  /** Ads added by addAds that sit in the ANN index's lists (IVF-Flat); the other index kinds scan added ads exactly beside the index. */
  addedInIndex: number;
  dim: number;
  index: string;
  /** The fusion hidden layers' DenseKernel variant, '' for TorchScript fusion. */
  fusionKernel: string;
  /** The precision the fusion's hidden layers run in ('fp32', 'bf16' or 'int16', 'auto' resolved), '' for TorchScript fusion. */
  fusionPrecision: string;
  userCacheHits: number;
  userCacheMisses: number;
  contextCacheHits: number;
  contextCacheMisses: number;
}

/** Rows of the ad tower's inputs, as train/ writes ad_categorical.i64, ad_title.i64 and ad_numeric.f32. */
export interface AdTowerInputs {
  /** [ads x 4]: advertiser, category, format, bid type (index + 1, 0 when unknown). */
  categorical: Int32Array;
  /** [ads x title tokens]: hashed title token buckets. */
  title: Int32Array;
  /** [ads x numeric features], standardised. */
  numeric: Float32Array;
}

export interface NativeEngine {
  /**
   * Queues a verified-on-entry AdRequest for the micro-batcher; `budgetMs` is the time left before its
   * deadline. Retrieval admits no ad that the request's block lists name (advertiser, category,
   * product) or whose campaign code is in `excludedCampaigns`, so exclusions never take a candidate slot.
   * With `personalised` false (default true) the request is scored as an anonymous user: no known-user
   * embedding or (user, ad) pair features, no age or gender, and no audience targeting match.
   */
  score(bytes: Uint8Array, budgetMs: number, excludedCampaigns?: Uint32Array, personalised?: boolean): Promise<ScoreResult>;
  /** Marks ads eligible (1) or not (0) for retrieval, effective for batches that start afterwards. */
  setEligibility(adIndex: Uint32Array, eligible: Uint8Array): void;
  /** Replaces the listed ads' static lightweight-score part (see adPrior in engine.ts), effective for batches that start afterwards. */
  setPriors(adIndex: Uint32Array, prior: Float32Array): void;
  /**
   * Embeds new ads with the model's ad tower and makes them servable from the next batch on; resolves
   * with the first new ad index (the others follow in order). `targeting` names ads by their
   * position in this call; `keys` has one entry per new ad.
   */
  addAds(ads: AdTowerInputs & { prior: Float32Array; keys: AdKeys; targeting?: AdTargeting[] }): Promise<number>;
  stats(): EngineStats;
  /** Scores what is queued, then stops; later calls to score reject with E_SHUTTING_DOWN. Idempotent. */
  close(): void;
}

export interface RequestFeatures {
  userId: string;
  userCategorical: number[];
  contextCategorical: number[];
  logPage: number;
  search: boolean;
  queryTokens?: number[];
  pageCategory?: number;
  pageProduct?: number;
}

export interface NativeAddon {
  buildInfo(): BuildInfo;
  /** Sets the thread budget; only before the first asynchronous call. */
  configure(budget: ThreadBudget): void;
  /** CPU time (ns) the calling thread has run: CLOCK_THREAD_CPUTIME_ID. */
  threadCpuNanos(): number;
  /** Throws E_BAD_REQUEST with the reason unless `bytes` is a well-formed AdRequest buffer. */
  verifyAdRequest(bytes: Uint8Array): void;
  /** Throws E_BAD_REQUEST with the reason unless `bytes` is a well-formed Event buffer. */
  verifyEvent(bytes: Uint8Array): void;
  /** Copies `vectors` (rows of `dim` floats); labels are row numbers. */
  VectorIndex: new (dim: number, vectors: Float32Array) => VectorIndex;
  /** The engine's Boolean targeting matcher on its own (docs/targeting.md). */
  TargetingIndex: new (adCount: number, targeting: AdTargeting[]) => TargetingIndex;
  /** AES-256-GCM under one 32-byte key through Node's own OpenSSL, keyed once (the event tokens' sealer). */
  GcmSealer: new (key: Buffer) => GcmSealer;
  /** The engine's model inputs for one AdRequest (a debugging and parity-testing aid). */
  featurize(bytes: Uint8Array, features: NativeEngineOptions['features']): RequestFeatures;
  /** Loads a model directory and builds the ANN index on an engine thread. */
  openEngine(options: NativeEngineOptions): Promise<NativeEngine>;
}

prepareNativeLoad();
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const addon: NativeAddon = require(addonPath);

/** Event tokens' sealer as the daemon runs it: one keyed OpenSSL context per process key. */
export const nativeGcmSealerOf: GcmSealerOf = (key) => new addon.GcmSealer(key);
