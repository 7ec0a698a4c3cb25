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
  /** How often the serving model answers the warm-up requests again to tell /readyz whether it can fill, in milliseconds. */
  canaryIntervalMs: number;
  /** Engine threads that run search and inference (the JS thread keeps its own core). */
  workerThreads: number;
  /** libtorch intra-op and OpenMP threads per engine thread. */
  computeThreads: number;
  /** Engine jobs that may wait before new ones are shed with 503. */
  queueCapacity: number;
  logLevel: LogLevel;
  /** Model directory written by `npm run train`; the daemon answers NoEngine when it is missing. */
  modelDir: string;
  /** FAISS index over ad embeddings: flat, ivf, hnsw or ivfpq. */
  indexKind: IndexKind;
  /** Directory where built FAISS indexes are kept between starts, keyed by embeddings and build options; empty: always build. */
  indexCacheDir: string;
  /** IVF lists; 0 picks about sqrt(ads). */
  nlist: number;
  /** IVF lists scanned per query; 0 scans enough lists to see about 8 x annCandidates ads, and at least 1/24 of the lists. */
  nprobe: number;
  /** IVF-Flat list scan: 8-bit codes re-ranked with the float vectors (sq8), or the float vectors (float). */
  ivfScan: IvfScan;
  /** Ads the ANN search returns per request. */
  annCandidates: number;
  /** Search placements: ads matching the query's keywords merged into the ANN candidates (0: off). */
  keywordCandidates: number;
  /** Candidates the model scores per request, after the lightweight score. */
  scoreCandidates: number;
  /** Requests per batched model pass. */
  maxBatch: number;
  /** Longest wait after a batch's first request, in microseconds. */
  maxDelayUs: number;
  /** Default auction when a request does not pick one. */
  auction: AuctionKind;
  /** Reserve prices in micros per billable unit. */
  reserveCpcMicros: number;
  reserveCpmMicros: number;
  reserveCpaMicros: number;
  /** Largest bid a campaign may set, in micros per billable unit; larger ones are refused at catalog load and in the admin API. */
  maxBidMicros: number;
  /** Largest daily or lifetime budget a campaign may set, in micros. */
  maxBudgetMicros: number;
  /** Added to every computed price (ε, docs/auction.md), in micros. */
  priceIncrementMicros: number;
  /** Secret for event tokens (at least 32 characters). Empty: a random key per process, so tokens die with it. */
  eventTokenKey: string;
  /** Secrets rotated out of eventTokenKey: tokens they sealed still verify until they expire; nothing new is sealed with them. */
  eventTokenPreviousKeys: string[];
  /** How long an event token stays valid, in seconds. */
  eventTokenTtlSeconds: number;
  /** How long after its click a conversion is still attributed (and charged), in seconds. */
  attributionWindowSeconds: number;
  /** Bearer token of the admin API; empty disables it. */
  adminToken: string;
  /** Fusion scoring: 'precomputed' (split first layer, W_ad·E_ad cached per ad) or 'model' (TorchScript score). */
  fusion: FusionKind;
  /** Ad decisions (HTTP and WebSocket) in flight at once; more are refused with 503 and Retry-After, so admitted ones keep their latency. */
  maxConcurrentDecisions: number;
  /** Share of ad requests logged (one JSON line each, with the request id); 5xx answers other than 503 are always logged. */
  logSampleRate: number;
  /** Lowest quality score (docs/auction.md) an ad may enter an auction with; 0 admits every ad. */
  minQualityScore: number;
  /** Ads carrying any of these catalog policy_flags never serve. */
  blockedPolicyFlags: string[];
  /** Auction settings per placement (search, product_page, category, homepage, cart), over the global ones. */
  placements: Partial<Record<PlacementName, PlacementRules>>;
  /** Directory of the durable spend ledger (snapshot.json and spend.<n>.log segments). */
  dataDir: string;
  /** Events between ledger snapshots (each one bounds the log a restart replays). */
  ledgerSnapshotEvents: number;
  /** redis://host:port of the Redis shared by several daemons for spend, pacing and frequency state; empty: in-process state with the local ledger. */
  redisUrl: string;
  /** How often a daemon mirrors shared spend from Redis, in milliseconds (bounds how late it sees a budget run out elsewhere). */
  redisSyncMs: number;
}

export type FusionKind = 'precomputed' | 'model';

export const placementNames = ['search', 'product_page', 'category', 'homepage', 'cart'] as const;
export type PlacementName = (typeof placementNames)[number];

export interface PlacementRules {
  auction?: AuctionKind;
  reserveCpcMicros?: number;
  reserveCpmMicros?: number;
  reserveCpaMicros?: number;
  minQualityScore?: number;
  /**
   * Multi-objective ranking: order candidates by ctr·pCTR + cvr·pCVR + value·adjusted
   * eCPM, each normalised by its largest value among the candidates; prices still come from the
   * adjusted eCPM of the next ad in that order.
   */
  ranking?: { ctr: number; cvr: number; value: number };
}

export type IndexKind = 'flat' | 'ivf' | 'hnsw' | 'ivfpq';
export type IvfScan = 'sq8' | 'float';
export type AuctionKind = 'gsp' | 'second_price' | 'first_price' | 'vcg';

export const defaults: Readonly<Config> = {
  host: '127.0.0.1',
  port: 8080,
  maxBodyBytes: 64 * 1024,
  defaultTmaxMs: 50,
  maxTmaxMs: 1000,
  maxSlots: 10,
  shutdownGraceMs: 10_000,
  canaryIntervalMs: 5_000,
  workerThreads: 1,
  computeThreads: 1,
  queueCapacity: 4096,
  logLevel: 'info',
  modelDir: 'models/demo',
  indexKind: 'ivf',
  indexCacheDir: 'cache/index',
  nlist: 0,
  nprobe: 0,
  ivfScan: 'sq8',
  annCandidates: 1000,
  keywordCandidates: 100,
  scoreCandidates: 300,
  maxBatch: 32,
  maxDelayUs: 1000,
  auction: 'gsp',
  reserveCpcMicros: 50_000,
  reserveCpmMicros: 500_000,
  reserveCpaMicros: 1_000_000,
  maxBidMicros: 1_000_000_000_000,
  maxBudgetMicros: 9_000_000_000_000,
  priceIncrementMicros: 10_000,
  maxConcurrentDecisions: 64,
  logSampleRate: 0.01,
  minQualityScore: 0,
  blockedPolicyFlags: ['disapproved'],
  placements: {},
  eventTokenKey: '',
  eventTokenPreviousKeys: [],
  eventTokenTtlSeconds: 86_400,
  attributionWindowSeconds: 86_400,
  adminToken: '',
  fusion: 'precomputed',
  dataDir: 'data',
  ledgerSnapshotEvents: 100_000,
  redisUrl: '',
  redisSyncMs: 200,
};

type Kind = 'string' | 'optionalString' | 'port' | 'positive' | 'count' | 'fraction' | 'number' | 'list' | 'placements' | 'logLevel' | 'indexKind' | 'ivfScan' | 'auction' | 'fusion';

const choices: Partial<Record<Kind, readonly string[]>> = {
  logLevel: ['debug', 'info', 'warn', 'error'],
  indexKind: ['flat', 'ivf', 'hnsw', 'ivfpq'],
  ivfScan: ['sq8', 'float'],
  auction: ['gsp', 'second_price', 'first_price', 'vcg'],
  fusion: ['precomputed', 'model'],
};

// Spend is summed in integer nanos, exact only below 2^53 (about 9.007e15 nanos = $9,007,199 in micros).
const maxExactMicros = 9_000_000_000_000;

const schema: { [K in keyof Config]: { env: string; kind: Kind; max?: number } } = {
  host: { env: 'ADSERVE_HOST', kind: 'string' },
  port: { env: 'ADSERVE_PORT', kind: 'port' },
  maxBodyBytes: { env: 'ADSERVE_MAX_BODY_BYTES', kind: 'positive', max: 16 * 1024 * 1024 },
  defaultTmaxMs: { env: 'ADSERVE_DEFAULT_TMAX_MS', kind: 'positive', max: 60_000 },
  maxTmaxMs: { env: 'ADSERVE_MAX_TMAX_MS', kind: 'positive', max: 60_000 },
  maxSlots: { env: 'ADSERVE_MAX_SLOTS', kind: 'positive', max: 100 },
  shutdownGraceMs: { env: 'ADSERVE_SHUTDOWN_GRACE_MS', kind: 'positive', max: 600_000 },
  canaryIntervalMs: { env: 'ADSERVE_CANARY_INTERVAL_MS', kind: 'positive', max: 3_600_000 },
  workerThreads: { env: 'ADSERVE_WORKER_THREADS', kind: 'positive', max: 64 },
  computeThreads: { env: 'ADSERVE_COMPUTE_THREADS', kind: 'positive', max: 256 },
  queueCapacity: { env: 'ADSERVE_QUEUE_CAPACITY', kind: 'positive', max: 1 << 20 },
  logLevel: { env: 'ADSERVE_LOG_LEVEL', kind: 'logLevel' },
  modelDir: { env: 'ADSERVE_MODEL_DIR', kind: 'string' },
  indexKind: { env: 'ADSERVE_INDEX_KIND', kind: 'indexKind' },
  indexCacheDir: { env: 'ADSERVE_INDEX_CACHE_DIR', kind: 'optionalString' },
  nlist: { env: 'ADSERVE_NLIST', kind: 'count', max: 1 << 20 },
  nprobe: { env: 'ADSERVE_NPROBE', kind: 'count', max: 1 << 20 },
  ivfScan: { env: 'ADSERVE_IVF_SCAN', kind: 'ivfScan' },
  annCandidates: { env: 'ADSERVE_ANN_CANDIDATES', kind: 'positive', max: 100_000 },
  keywordCandidates: { env: 'ADSERVE_KEYWORD_CANDIDATES', kind: 'count', max: 100_000 },
  scoreCandidates: { env: 'ADSERVE_SCORE_CANDIDATES', kind: 'positive', max: 100_000 },
  maxBatch: { env: 'ADSERVE_MAX_BATCH', kind: 'positive', max: 4096 },
  maxDelayUs: { env: 'ADSERVE_MAX_DELAY_US', kind: 'count', max: 1_000_000 },
  auction: { env: 'ADSERVE_AUCTION', kind: 'auction' },
  reserveCpcMicros: { env: 'ADSERVE_RESERVE_CPC_MICROS', kind: 'count', max: maxExactMicros },
  reserveCpmMicros: { env: 'ADSERVE_RESERVE_CPM_MICROS', kind: 'count', max: maxExactMicros },
  reserveCpaMicros: { env: 'ADSERVE_RESERVE_CPA_MICROS', kind: 'count', max: maxExactMicros },
  maxBidMicros: { env: 'ADSERVE_MAX_BID_MICROS', kind: 'positive', max: maxExactMicros },
  maxBudgetMicros: { env: 'ADSERVE_MAX_BUDGET_MICROS', kind: 'positive', max: maxExactMicros },
  priceIncrementMicros: { env: 'ADSERVE_PRICE_INCREMENT_MICROS', kind: 'count', max: 1e9 },
  maxConcurrentDecisions: { env: 'ADSERVE_MAX_CONCURRENT_DECISIONS', kind: 'positive', max: 1 << 20 },
  logSampleRate: { env: 'ADSERVE_LOG_SAMPLE_RATE', kind: 'fraction' },
  minQualityScore: { env: 'ADSERVE_MIN_QUALITY_SCORE', kind: 'number', max: 100 },
  blockedPolicyFlags: { env: 'ADSERVE_BLOCKED_POLICY_FLAGS', kind: 'list' },
  placements: { env: 'ADSERVE_PLACEMENTS', kind: 'placements' },
  eventTokenKey: { env: 'ADSERVE_EVENT_TOKEN_KEY', kind: 'optionalString' },
  eventTokenPreviousKeys: { env: 'ADSERVE_EVENT_TOKEN_PREVIOUS_KEYS', kind: 'list' },
  eventTokenTtlSeconds: { env: 'ADSERVE_EVENT_TOKEN_TTL_SECONDS', kind: 'positive', max: 30 * 86_400 },
  attributionWindowSeconds: { env: 'ADSERVE_ATTRIBUTION_WINDOW_SECONDS', kind: 'positive', max: 90 * 86_400 },
  adminToken: { env: 'ADSERVE_ADMIN_TOKEN', kind: 'optionalString' },
  fusion: { env: 'ADSERVE_FUSION', kind: 'fusion' },
  dataDir: { env: 'ADSERVE_DATA_DIR', kind: 'string' },
  ledgerSnapshotEvents: { env: 'ADSERVE_LEDGER_SNAPSHOT_EVENTS', kind: 'positive', max: 100_000_000 },
  redisUrl: { env: 'REDIS_URL', kind: 'optionalString' },
  redisSyncMs: { env: 'ADSERVE_REDIS_SYNC_MS', kind: 'positive', max: 60_000 },
};

/** Environment variable naming a JSON file whose keys are Config keys. */
export const configFileEnv = 'ADSERVE_CONFIG';

export class ConfigError extends Error {}

function placementRules(key: string, raw: unknown): Config['placements'] {
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new ConfigError(`${key} must be a JSON object`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${key} must be an object keyed by placement`);
  const out: Config['placements'] = {};
  for (const [placement, rules] of Object.entries(value)) {
    const where = `${key}.${placement}`;
    if (!(placementNames as readonly string[]).includes(placement)) throw new ConfigError(`${key}: unknown placement "${placement}" (${placementNames.join(', ')})`);
    if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) throw new ConfigError(`${where} must be an object`);
    const checked: PlacementRules = {};
    for (const [field, setting] of Object.entries(rules as Record<string, unknown>)) {
      if (field === 'auction') checked.auction = coerce(`${where}.auction`, 'auction', undefined, setting) as AuctionKind;
      else if (field === 'reserveCpcMicros' || field === 'reserveCpmMicros' || field === 'reserveCpaMicros') checked[field] = coerce(`${where}.${field}`, 'count', maxExactMicros, setting) as number;
      else if (field === 'minQualityScore') checked.minQualityScore = coerce(`${where}.minQualityScore`, 'number', 100, setting) as number;
      else if (field === 'ranking') {
        const weights = setting as Record<string, unknown>;
        const weight = (name: string): number => coerce(`${where}.ranking.${name}`, 'number', 1e6, weights?.[name] ?? 0) as number;
        if (typeof setting !== 'object' || setting === null || Object.keys(setting).some((name) => !['ctr', 'cvr', 'value'].includes(name))) {
          throw new ConfigError(`${where}.ranking must be {ctr, cvr, value} weights`);
        }
        checked.ranking = { ctr: weight('ctr'), cvr: weight('cvr'), value: weight('value') };
        if (checked.ranking.ctr + checked.ranking.cvr + checked.ranking.value <= 0) throw new ConfigError(`${where}.ranking needs a positive weight`);
      } else throw new ConfigError(`${where}: unknown setting "${field}"`);
    }
    out[placement as PlacementName] = checked;
  }
  return out;
}

function coerce(key: string, kind: Kind, max: number | undefined, raw: unknown): string | number | string[] | Config['placements'] {
  const fromEnv = typeof raw === 'string';
  switch (kind) {
    case 'placements':
      return placementRules(key, raw);
    case 'list': {
      const items = fromEnv ? raw.split(',').map((item) => item.trim()).filter((item) => item !== '') : raw;
      if (!Array.isArray(items) || items.some((item) => typeof item !== 'string' || item === '')) throw new ConfigError(`${key} must be a list of non-empty strings`);
      return items as string[];
    }
    case 'fraction':
    case 'number': {
      const value = fromEnv && raw.trim() !== '' ? Number(raw) : raw;
      const upper = kind === 'fraction' ? 1 : (max ?? Number.MAX_VALUE);
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > upper) {
        throw new ConfigError(`${key} must be a number in 0..${upper} (got ${JSON.stringify(raw)})`);
      }
      return value;
    }
    case 'string':
      if (typeof raw !== 'string' || raw.length === 0) throw new ConfigError(`${key} must be a non-empty string`);
      return raw;
    case 'optionalString':
      if (typeof raw !== 'string') throw new ConfigError(`${key} must be a string`);
      return raw;
    case 'logLevel':
    case 'indexKind':
    case 'ivfScan':
    case 'auction':
    case 'fusion': {
      const allowed = choices[kind]!;
      if (typeof raw !== 'string' || !allowed.includes(raw)) {
        throw new ConfigError(`${key} must be one of ${allowed.join(', ')} (got ${JSON.stringify(raw)})`);
      }
      return raw;
    }
    case 'port':
    case 'count':
    case 'positive': {
      const value = fromEnv && /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw;
      const min = kind === 'positive' ? 1 : 0;
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
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const source = env[spec.env] !== undefined ? `${spec.env}` : key;
    config[key] = coerce(source, spec.kind, spec.max, merged[key]);
  }
  const result = config as unknown as Config;
  if (result.defaultTmaxMs > result.maxTmaxMs) throw new ConfigError('defaultTmaxMs must not exceed maxTmaxMs');
  if (result.scoreCandidates > result.annCandidates) throw new ConfigError('scoreCandidates must not exceed annCandidates');
  if (result.eventTokenKey !== '' && result.eventTokenKey.length < 32) throw new ConfigError('eventTokenKey must be at least 32 characters');
  const reserves: Array<[string, number | undefined]> = [['reserveCpcMicros', result.reserveCpcMicros], ['reserveCpmMicros', result.reserveCpmMicros], ['reserveCpaMicros', result.reserveCpaMicros]];
  for (const [placement, rules] of Object.entries(result.placements)) {
    for (const field of ['reserveCpcMicros', 'reserveCpmMicros', 'reserveCpaMicros'] as const) reserves.push([`placements.${placement}.${field}`, rules?.[field]]);
  }
  for (const [name, value] of reserves) if (value !== undefined && value > result.maxBidMicros) throw new ConfigError(`${name} must not exceed maxBidMicros (${result.maxBidMicros})`);
  if (result.maxBidMicros > result.maxBudgetMicros) throw new ConfigError('maxBidMicros must not exceed maxBudgetMicros');
  if (result.eventTokenPreviousKeys.some((key) => key.length < 32)) throw new ConfigError('every eventTokenPreviousKeys entry must be at least 32 characters');
  if (result.eventTokenPreviousKeys.length > 0 && result.eventTokenKey === '') throw new ConfigError('eventTokenPreviousKeys needs an eventTokenKey to seal new tokens with');
  if (result.redisUrl !== '' && !/^rediss?:\/\/[^\s]+$/.test(result.redisUrl)) throw new ConfigError(`redisUrl must be a redis:// or rediss:// URL (got ${JSON.stringify(result.redisUrl)})`);
  return result;
}
