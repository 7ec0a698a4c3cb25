// The one home of configuration: schema, defaults, an optional JSON file and environment
// overrides. Nothing else in adserve reads process.env.
import { readFileSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Config {
  /** Address the HTTP/WebSocket server binds to. */
  host: string;
  /** TCP port; 0 picks a free one (tests). */
  port: number;
  /** Largest accepted request body in bytes; larger ones get 413. */
  maxBodyBytes: number;
  /** Decision deadline when a request sends no tmax_ms, in milliseconds. */
  defaultTmaxMs: number;
  /** Upper bound on a request's tmax_ms; larger values are clamped to it. */
  maxTmaxMs: number;
  /** Most slots one request may ask for. */
  maxSlots: number;
  /** How long a SIGTERM/SIGINT waits for in-flight requests before exiting anyway, in milliseconds. */
  shutdownGraceMs: number;
  /** Engine threads that run search and inference (the JS thread keeps its own core). */
  workerThreads: number;
  /** libtorch intra-op and OpenMP threads per engine thread. */
  computeThreads: number;
  /** Engine jobs that may wait before new ones are shed with 503. */
  queueCapacity: number;
  logLevel: LogLevel;
}

export const defaults: Readonly<Config> = {
  host: '127.0.0.1',
  port: 8080,
  maxBodyBytes: 64 * 1024,
  defaultTmaxMs: 50,
  maxTmaxMs: 1000,
  maxSlots: 10,
  shutdownGraceMs: 10_000,
  workerThreads: 1,
  computeThreads: 1,
  queueCapacity: 4096,
  logLevel: 'info',
};

type Kind = 'string' | 'port' | 'positive' | 'logLevel';

const schema: { [K in keyof Config]: { env: string; kind: Kind; max?: number } } = {
  host: { env: 'ADSERVE_HOST', kind: 'string' },
  port: { env: 'ADSERVE_PORT', kind: 'port' },
  maxBodyBytes: { env: 'ADSERVE_MAX_BODY_BYTES', kind: 'positive', max: 16 * 1024 * 1024 },
  defaultTmaxMs: { env: 'ADSERVE_DEFAULT_TMAX_MS', kind: 'positive', max: 60_000 },
  maxTmaxMs: { env: 'ADSERVE_MAX_TMAX_MS', kind: 'positive', max: 60_000 },
  maxSlots: { env: 'ADSERVE_MAX_SLOTS', kind: 'positive', max: 100 },
  shutdownGraceMs: { env: 'ADSERVE_SHUTDOWN_GRACE_MS', kind: 'positive', max: 600_000 },
  workerThreads: { env: 'ADSERVE_WORKER_THREADS', kind: 'positive', max: 64 },
  computeThreads: { env: 'ADSERVE_COMPUTE_THREADS', kind: 'positive', max: 256 },
  queueCapacity: { env: 'ADSERVE_QUEUE_CAPACITY', kind: 'positive', max: 1 << 20 },
  logLevel: { env: 'ADSERVE_LOG_LEVEL', kind: 'logLevel' },
};

/** Environment variable naming a JSON file whose keys are Config keys. */
export const configFileEnv = 'ADSERVE_CONFIG';

export class ConfigError extends Error {}

function coerce(key: string, kind: Kind, max: number | undefined, raw: unknown): string | number {
  const fromEnv = typeof raw === 'string';
  switch (kind) {
    case 'string':
      if (typeof raw !== 'string' || raw.length === 0) throw new ConfigError(`${key} must be a non-empty string`);
      return raw;
    case 'logLevel':
      if (raw !== 'debug' && raw !== 'info' && raw !== 'warn' && raw !== 'error') {
        throw new ConfigError(`${key} must be one of debug, info, warn, error (got ${JSON.stringify(raw)})`);
      }
      return raw;
    case 'port':
    case 'positive': {
      const value = fromEnv && /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw;
      const min = kind === 'port' ? 0 : 1;
      const upper = kind === 'port' ? 65535 : (max ?? Number.MAX_SAFE_INTEGER);
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > upper) {
        throw new ConfigError(`${key} must be an integer in ${min}..${upper} (got ${JSON.stringify(raw)})`);
      }
      return value;
    }
  }
}

/** Builds the validated config: defaults, then the JSON file, then environment variables. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const merged: Record<string, unknown> = { ...defaults };
  const file = env[configFileEnv];
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${file} must hold a JSON object`);
    }
    for (const [key, value] of Object.entries(parsed)) {
      if (!(key in schema)) throw new ConfigError(`config file ${file}: unknown key "${key}"`);
      merged[key] = value;
    }
  }
  for (const [key, spec] of Object.entries(schema)) {
    const raw = env[spec.env];
    if (raw !== undefined) merged[key] = raw;
  }
  const config: Record<string, string | number> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const source = env[spec.env] !== undefined ? `${spec.env}` : key;
    config[key] = coerce(source, spec.kind, spec.max, merged[key]);
  }
  const result = config as unknown as Config;
  if (result.defaultTmaxMs > result.maxTmaxMs) throw new ConfigError('defaultTmaxMs must not exceed maxTmaxMs');
  return result;
}
