// Typed face of the native addon (native/binding/addon.cpp). Invalid arguments throw synchronously;
// failures of asynchronous work reject. Every error carries a stable `code` (NativeErrorCode).
import { addonPath } from '../paths';

export type NativeErrorCode =
  | 'E_BAD_REQUEST'
  | 'E_INVALID_ARG'
  | 'E_QUEUE_FULL'
  | 'E_SHUTTING_DOWN'
  | 'E_MODEL'
  | 'E_INDEX'
  | 'E_NOMEM'
  | 'E_NATIVE';

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
}

export interface ThreadBudget {
  /** Engine threads running asynchronous work. */
  workerThreads?: number;
  /** libtorch intra-op and OpenMP threads. */
  computeThreads?: number;
  /** Jobs that may wait for an engine thread before submissions fail with E_QUEUE_FULL. */
  queueCapacity?: number;
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

export interface NativeAddon {
  buildInfo(): BuildInfo;
  /** Sets the thread budget; only before the first asynchronous call. */
  configure(budget: ThreadBudget): void;
  /** Throws E_BAD_REQUEST with the reason unless `bytes` is a well-formed AdRequest buffer. */
  verifyAdRequest(bytes: Uint8Array): void;
  /** Throws E_BAD_REQUEST with the reason unless `bytes` is a well-formed Event buffer. */
  verifyEvent(bytes: Uint8Array): void;
  /** Copies `vectors` (rows of `dim` floats); labels are row numbers. */
  VectorIndex: new (dim: number, vectors: Float32Array) => VectorIndex;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const addon: NativeAddon = require(addonPath);
