// The one home of configuration: one table of settings (key, environment variable, type, default,
// bounds, doc) from which the Config type, the defaults, the parser and the README's table all
// derive; then an optional JSON file and environment overrides. Nothing else in adserve reads process.env.
import { readFileSync } from 'node:fs';

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

/** One setting: how its environment variable is read, what values it admits, and one sentence for users. */
export type Setting =
  | { env: string; type: 'string'; nonEmpty: boolean; default: string; doc: string }
  | { env: string; type: 'integer' | 'number'; min: number; max: number; default: number; doc: string }
  | { env: string; type: 'choice'; values: readonly string[]; default: string; doc: string }
  /** Comma-separated in the environment. */
  | { env: string; type: 'list'; default: readonly string[]; doc: string }
  /** Comma-separated in the environment; `nonIncreasing`: each entry at most the one before it. */
  | { env: string; type: 'numbers'; min: number; max: number; maxLength: number; nonIncreasing: boolean; default: readonly number[]; doc: string }
  /** A JSON object in the environment. */
  | { env: string; type: 'placements'; default: Readonly<Record<string, never>>; doc: string };

// Spend is summed in integer nanos, exact only below 2^53 (about 9.007e15 nanos = $9,007,199 in micros).
const maxExactMicros = 9_000_000_000_000;

export const settings = {
  host: { env: 'ADSERVE_HOST', type: 'string', nonEmpty: true, default: '127.0.0.1', doc: 'Address the HTTP/WebSocket server binds to.' },
  port: { env: 'ADSERVE_PORT', type: 'integer', min: 0, max: 65535, default: 8080, doc: 'TCP port; 0 picks a free one.' },
  maxBodyBytes: {
    env: 'ADSERVE_MAX_BODY_BYTES',
    type: 'integer',
    min: 1,
    max: 16 * 1024 * 1024,
    default: 64 * 1024,
    doc: 'Largest accepted request body in bytes; larger ones get 413.',
  },
  defaultTmaxMs: {
    env: 'ADSERVE_DEFAULT_TMAX_MS',
    type: 'integer',
    min: 1,
    max: 60_000,
    default: 50,
    doc: 'Decision deadline in milliseconds when a request sends no `tmax_ms` (at most `maxTmaxMs`).',
  },
  maxTmaxMs: {
    env: 'ADSERVE_MAX_TMAX_MS',
    type: 'integer',
    min: 1,
    max: 60_000,
    default: 1000,
    doc: "Upper bound on a request's `tmax_ms` in milliseconds; larger values are clamped to it.",
  },
  maxSlots: { env: 'ADSERVE_MAX_SLOTS', type: 'integer', min: 1, max: 100, default: 10, doc: 'Most slots one request may ask for.' },
  shutdownGraceMs: {
    env: 'ADSERVE_SHUTDOWN_GRACE_MS',
    type: 'integer',
    min: 1,
    max: 600_000,
    default: 10_000,
    doc: 'How long SIGTERM/SIGINT waits for in-flight requests before exiting anyway, in milliseconds.',
  },
  drainDelayMs: {
    env: 'ADSERVE_DRAIN_DELAY_MS',
    type: 'integer',
    min: 0,
    max: 600_000,
    default: 5_000,
    doc: 'After SIGTERM/SIGINT, how long `/readyz` answers 503 while new connections and requests are still served, so load balancers stop routing here before the listener closes, in milliseconds; a second signal cuts it short.',
  },
  canaryIntervalMs: {
    env: 'ADSERVE_CANARY_INTERVAL_MS',
    type: 'integer',
    min: 1,
    max: 3_600_000,
    default: 5_000,
    doc: 'How often the serving model answers the warm-up requests again to tell `/readyz` whether it can fill, in milliseconds.',
  },
  workerThreads: {
    env: 'ADSERVE_WORKER_THREADS',
    type: 'integer',
    min: 1,
    max: 64,
    default: 1,
    doc: 'Engine threads that run search and inference (the JS thread keeps its own core).',
  },
  computeThreads: {
    env: 'ADSERVE_COMPUTE_THREADS',
    type: 'integer',
    min: 1,
    max: 256,
    default: 1,
    doc: 'libtorch intra-op and OpenMP threads per engine thread.',
  },
  hugePages: {
    env: 'ADSERVE_HUGE_PAGES',
    type: 'choice',
    values: ['off', 'on'],
    default: 'off',
    doc: "`on`: the engine's tables read at random (ad embeddings, the fusion's per-ad rows; from 2 MiB up) are mapped on transparent huge pages (MADV_HUGEPAGE). Serving at 1.05M ads took about 18% less engine CPU per request; starting took about 8-10 s longer on our VMs, where the kernel compacts memory to find the pages. See docs/engine.md.",
  },
  eventLoopLagResolutionMs: {
    env: 'ADSERVE_EVENT_LOOP_LAG_RESOLUTION_MS',
    type: 'integer',
    min: 1,
    max: 1000,
    default: 100,
    doc: "Sampling interval of the `nodejs_eventloop_lag_*` metrics, in milliseconds. The sampler wakes the JS thread this often even with no traffic: on our 2-core VM a wake-up costs about 0.1 ms of CPU, so prom-client's usual 10 ms took about 10 ms of CPU a second on an idle daemon (0.1 ms per request at 100 requests/s) and 100 ms takes about 1. Stalls much shorter than it are seen only now and then; the request latency histograms see every one.",
  },
  queueCapacity: {
    env: 'ADSERVE_QUEUE_CAPACITY',
    type: 'integer',
    min: 1,
    max: 1 << 20,
    default: 4096,
    doc: 'Engine jobs that may wait before new ones are shed with 503.',
  },
  logLevel: {
    env: 'ADSERVE_LOG_LEVEL',
    type: 'choice',
    values: ['debug', 'info', 'warn', 'error'],
    default: 'info',
    doc: 'Least severe level logged; logs are JSON lines on stdout.',
  },
  modelDir: {
    env: 'ADSERVE_MODEL_DIR',
    type: 'string',
    nonEmpty: true,
    default: 'models/demo',
    doc: 'Model directory written by `npm run train`; the daemon answers `NoEngine` when it is missing.',
  },
  modelRepository: {
    env: 'ADSERVE_MODEL_REPOSITORY',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: 'Model repository laid out `<name>/<version>/`, each version a model directory; when set, `modelDir` names `<name>` (its newest version, in natural order: v2 before v10) or `<name>/<version>` in it, and admin swaps may name `{name, version}`; empty: `modelDir` is a directory path.',
  },
  indexKind: {
    env: 'ADSERVE_INDEX_KIND',
    type: 'choice',
    values: ['flat', 'ivf', 'hnsw', 'ivfpq'],
    default: 'ivf',
    doc: 'FAISS index over the ad embeddings.',
  },
  indexCacheDir: {
    env: 'ADSERVE_INDEX_CACHE_DIR',
    type: 'string',
    nonEmpty: false,
    default: 'cache/index',
    doc: 'Directory where built FAISS indexes are kept between starts, named by a hash of the ad embeddings and the build options (a damaged or mismatched file is rebuilt); empty: always build.',
  },
  nlist: { env: 'ADSERVE_NLIST', type: 'integer', min: 0, max: 1 << 20, default: 0, doc: 'IVF lists; 0 picks about √ads.' },
  nprobe: {
    env: 'ADSERVE_NPROBE',
    type: 'integer',
    min: 0,
    max: 1 << 20,
    default: 0,
    doc: 'IVF lists scanned per query; 0 scans enough lists to see about 8 × `annCandidates` ads and at least 1/24 of the lists.',
  },
  ivfScan: {
    env: 'ADSERVE_IVF_SCAN',
    type: 'choice',
    values: ['sq8', 'float'],
    default: 'sq8',
    doc: 'IVF list scan: `sq8` reads 8-bit codes and re-ranks the best k + k/4 with the float vectors, `float` reads the float vectors (about 4× the memory traffic).',
  },
  annCandidates: { env: 'ADSERVE_ANN_CANDIDATES', type: 'integer', min: 1, max: 100_000, default: 1000, doc: 'Ads the ANN search returns per request.' },
  keywordCandidates: {
    env: 'ADSERVE_KEYWORD_CANDIDATES',
    type: 'integer',
    min: 0,
    max: 100_000,
    default: 100,
    doc: 'Search placements: ads whose exact, phrase or broad keywords the query matches join the ANN candidates if they pass eligibility and targeting; 0 turns this off.',
  },
  scoreCandidates: {
    env: 'ADSERVE_SCORE_CANDIDATES',
    type: 'integer',
    min: 1,
    max: 100_000,
    default: 300,
    doc: 'Candidates the model scores per request, after the lightweight score (at most `annCandidates`).',
  },
  lightSimilarityWeight: {
    env: 'ADSERVE_LIGHT_SIMILARITY_WEIGHT',
    type: 'number',
    min: 0,
    max: 100,
    default: 0.3,
    doc: 'Lightweight score: weight of the user–ad embedding similarity, (Q·E_ad + 1) / 2.',
  },
  lightValueWeight: {
    env: 'ADSERVE_LIGHT_VALUE_WEIGHT',
    type: 'number',
    min: 0,
    max: 100,
    default: 0.3,
    doc: "Lightweight score: weight of the ad's expected eCPM over `lightMaxEcpmMicros` (at most 1).",
  },
  lightCtrWeight: {
    env: 'ADSERVE_LIGHT_CTR_WEIGHT',
    type: 'number',
    min: 0,
    max: 100,
    default: 0.3,
    doc: "Lightweight score: weight of the ad's historical CTR.",
  },
  lightQualityWeight: {
    env: 'ADSERVE_LIGHT_QUALITY_WEIGHT',
    type: 'number',
    min: 0,
    max: 100,
    default: 0.1,
    doc: "Lightweight score: weight of the ad's landing-page quality (the four weights need a positive sum).",
  },
  lightMaxEcpmMicros: {
    env: 'ADSERVE_LIGHT_MAX_ECPM_MICROS',
    type: 'integer',
    min: 1,
    max: maxExactMicros,
    default: 50_000_000,
    doc: 'Lightweight score: expected eCPM in micros at which the value term saturates at 1.',
  },
  maxBatch: { env: 'ADSERVE_MAX_BATCH', type: 'integer', min: 1, max: 4096, default: 32, doc: 'Requests per batched model pass.' },
  batchThreads: {
    env: 'ADSERVE_BATCH_THREADS',
    type: 'integer',
    min: 0,
    max: 64,
    default: 0,
    doc: 'Batches the engine scores side by side, each on a batcher thread of its own; 0: one per CPU core the process may use. On a 2-core VM with the load generator on the same box, two against one: 1.39x the throughput at 20K ads and 1.10x at 1.05M (at 1.16x the CPU per request there), with a longer latency tail at half of saturation; on a slower, noisier 2-vCPU Xeon VM 0.80x at 1.30x the CPU per request, where 1 is the better setting (docs/engine.md, Threads, Batcher threads and the Ice Lake-class Xeon).',
  },
  maxDelayUs: {
    env: 'ADSERVE_MAX_DELAY_US',
    type: 'integer',
    min: 0,
    max: 1_000_000,
    default: 1000,
    doc: "Longest wait after a batch's first request for more, in microseconds; the batcher waits only while requests have been arriving more often than this (docs/engine.md, Threads).",
  },
  auction: {
    env: 'ADSERVE_AUCTION',
    type: 'choice',
    values: ['gsp', 'second_price', 'first_price', 'vcg'],
    default: 'gsp',
    doc: 'Auction when a request does not pick one.',
  },
  positionEffects: {
    env: 'ADSERVE_POSITION_EFFECTS',
    type: 'numbers',
    min: 0,
    max: 1,
    maxLength: 100,
    nonIncreasing: true,
    default: [1, 0.75, 0.6, 0.5, 0.42, 0.36, 0.32, 0.29, 0.27, 0.25],
    doc: 'Click-through factor θ of each slot position, top first, by which VCG prices (docs/auction.md); one positive value for each of the maxSlots positions.',
  },
  reserveCpcMicros: {
    env: 'ADSERVE_RESERVE_CPC_MICROS',
    type: 'integer',
    min: 0,
    max: maxExactMicros,
    default: 50_000,
    doc: 'Reserve price per click in micros (at most `maxBidMicros`).',
  },
  reserveCpmMicros: {
    env: 'ADSERVE_RESERVE_CPM_MICROS',
    type: 'integer',
    min: 0,
    max: maxExactMicros,
    default: 500_000,
    doc: 'Reserve price per thousand impressions in micros (at most `maxBidMicros`).',
  },
  reserveCpaMicros: {
    env: 'ADSERVE_RESERVE_CPA_MICROS',
    type: 'integer',
    min: 0,
    max: maxExactMicros,
    default: 1_000_000,
    doc: 'Reserve price per conversion in micros (at most `maxBidMicros`).',
  },
  maxBidMicros: {
    env: 'ADSERVE_MAX_BID_MICROS',
    type: 'integer',
    min: 1,
    max: maxExactMicros,
    default: 1_000_000_000_000,
    doc: 'Largest bid a campaign may set, in micros per billable unit ($1,000,000 by default); larger ones are refused at catalog load and in the admin API.',
  },
  maxBudgetMicros: {
    env: 'ADSERVE_MAX_BUDGET_MICROS',
    type: 'integer',
    min: 1,
    max: maxExactMicros,
    default: maxExactMicros,
    doc: 'Largest daily or lifetime budget a campaign may set, in micros; spend is summed in integer nanos, exact below 2^53.',
  },
  currency: {
    env: 'ADSERVE_CURRENCY',
    type: 'string',
    nonEmpty: true,
    default: 'USD',
    doc: 'ISO 4217 code (three upper-case letters) of the account currency every amount in micros is in; answers name it as `cur`, and requests whose `cur` list leaves it out are refused with 422.',
  },
  priceIncrementMicros: {
    env: 'ADSERVE_PRICE_INCREMENT_MICROS',
    type: 'integer',
    min: 0,
    max: 1e9,
    default: 10_000,
    doc: 'ε added to every computed GSP and second price (not VCG; docs/auction.md), in micros.',
  },
  maxConcurrentDecisions: {
    env: 'ADSERVE_MAX_CONCURRENT_DECISIONS',
    type: 'integer',
    min: 1,
    max: 1 << 20,
    default: 64,
    doc: 'Ad decisions (HTTP and WebSocket) in flight at once; more are refused with 503 and `Retry-After`, so admitted ones keep their latency.',
  },
  logSampleRate: {
    env: 'ADSERVE_LOG_SAMPLE_RATE',
    type: 'number',
    min: 0,
    max: 1,
    default: 0.01,
    doc: 'Share of ad requests logged (one JSON line each, with the request id); 5xx answers other than 503 are always logged.',
  },
  minQualityScore: {
    env: 'ADSERVE_MIN_QUALITY_SCORE',
    type: 'number',
    min: 0,
    max: 100,
    default: 0,
    doc: 'Lowest quality score (docs/auction.md) an ad may enter an auction with; 0 admits every ad.',
  },
  blockedPolicyFlags: {
    env: 'ADSERVE_BLOCKED_POLICY_FLAGS',
    type: 'list',
    default: ['disapproved'],
    doc: 'Ads carrying any of these catalog `policy_flags` never serve.',
  },
  placements: {
    env: 'ADSERVE_PLACEMENTS',
    type: 'placements',
    default: {},
    doc: 'Per placement (`search`, `product_page`, `category`, `homepage`, `cart`): `auction`, `reserveCpcMicros`, `reserveCpmMicros`, `reserveCpaMicros`, `minQualityScore` and `ranking: {ctr, cvr, value}` over the global settings.',
  },
  eventTokenKey: {
    env: 'ADSERVE_EVENT_TOKEN_KEY',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: 'Secret that seals event tokens, at least 32 characters; empty: a random key per process, so tokens die with it.',
  },
  eventTokenPreviousKeys: {
    env: 'ADSERVE_EVENT_TOKEN_PREVIOUS_KEYS',
    type: 'list',
    default: [],
    doc: 'Secrets rotated out of `eventTokenKey`: tokens they sealed still open until they expire and nothing new is sealed with them; keep each for one `eventTokenTtlSeconds` after rotating.',
  },
  eventTokenTtlSeconds: {
    env: 'ADSERVE_EVENT_TOKEN_TTL_SECONDS',
    type: 'integer',
    min: 1,
    max: 30 * 86_400,
    default: 86_400,
    doc: 'How long an event token stays valid, in seconds.',
  },
  attributionWindowSeconds: {
    env: 'ADSERVE_ATTRIBUTION_WINDOW_SECONDS',
    type: 'integer',
    min: 1,
    max: 90 * 86_400,
    default: 86_400,
    doc: 'How long after its click a conversion is still attributed and charged, in seconds.',
  },
  adminToken: {
    env: 'ADSERVE_ADMIN_TOKEN',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: 'Bearer token of the admin API; empty turns the admin API off.',
  },
  fusion: {
    env: 'ADSERVE_FUSION',
    type: 'choice',
    values: ['precomputed', 'model'],
    default: 'precomputed',
    doc: 'Fusion scoring: `precomputed` (first fusion layer split, W_ad·E_ad cached per ad) or `model` (the TorchScript `score` method); a DLRM model directory (manifest `scorer` dlrm) always uses `model`.',
  },
  fusionPrecision: {
    env: 'ADSERVE_FUSION_PRECISION',
    type: 'choice',
    values: ['auto', 'fp32', 'bf16', 'int16'],
    default: 'auto',
    doc: "Precision of the precomputed fusion's hidden layers: `fp32`; `bf16` (bfloat16 weights and activations, fp32 sums; AMX or AVX512_BF16 where the CPU has them, emulated elsewhere and slower than fp32 there); `int16` (weights and each row's inputs as integers with a scale each, exact int32 sums: AVX-512 VNNI `vpdpwssd` where the CPU has it, AVX2 `vpmaddwd` elsewhere (no faster than fp32 there), the same bits on every CPU; closer to fp32 than bf16); `auto`: bf16 where the CPU has AMX or AVX512_BF16, else int16 where it has AVX-512 VNNI, else fp32 (a fleet of mixed CPUs that must score alike pins one, and `fusionKernel` for bf16). In bf16 the cached per-ad rows of the first layer are bf16 too; the rest of that layer and the heads stay fp32 (in int16 too). See docs/engine.md for the measured quality and speed.",
  },
  fusionKernel: {
    env: 'ADSERVE_FUSION_KERNEL',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: "Pins the instruction set of the fusion's hidden layers; empty: the CPU's best for `fusionPrecision`. bf16: `amx` (AMX tile multiply, where the CPU and kernel allow it), `avx512bf16`, `avx2`, `portable`; int16: `avx512vnni`, `avx2`, `portable`; fp32: `avx512`, `avx2`, `portable`. Every bf16 kernel but `amx` gives the same bits (AMX rounds inside its tile instruction its own way, within 0.001 of them on the logits), so a fleet that mixes AMX and other CPUs and must score alike pins `avx512bf16` or `avx2`. A kernel this CPU lacks fails the start.",
  },
  dataDir: {
    env: 'ADSERVE_DATA_DIR',
    type: 'string',
    nonEmpty: true,
    default: 'data',
    doc: 'Directory of the durable spend ledger (`snapshot.jsonl` and `spend.<n>.log` segments), the model history and, by default, the catalog store (`catalog.sqlite`).',
  },
  ledgerSnapshotEvents: {
    env: 'ADSERVE_LEDGER_SNAPSHOT_EVENTS',
    type: 'integer',
    min: 1,
    max: 100_000_000,
    default: 100_000,
    doc: 'Events between ledger snapshots (each one bounds the log a restart replays).',
  },
  reportRetentionDays: {
    env: 'ADSERVE_REPORT_RETENTION_DAYS',
    type: 'integer',
    min: 1,
    max: 3660,
    default: 90,
    doc: 'How many days of report cells (GET /v1/admin/reports) are kept; a report may span at most this many days.',
  },
  reportFlushMs: {
    env: 'ADSERVE_REPORT_FLUSH_MS',
    type: 'integer',
    min: 10,
    max: 3_600_000,
    default: 10_000,
    doc: "How often the decision path's report counters (auctions entered and won, served value) are persisted, in milliseconds: a kill -9 loses at most this long of them.",
  },
  redisUrl: {
    env: 'REDIS_URL',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: '`redis://` or `rediss://` URL of the Redis shared by several daemons for spend, pacing, frequency and idempotency state; empty: in-process state with the local ledger.',
  },
  redisSyncMs: {
    env: 'ADSERVE_REDIS_SYNC_MS',
    type: 'integer',
    min: 1,
    max: 60_000,
    default: 200,
    doc: 'How often a daemon mirrors shared spend from Redis, in milliseconds (bounds how late it sees a budget run out elsewhere).',
  },
  catalogDatabase: {
    env: 'ADSERVE_CATALOG_DATABASE',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: "SQLite file of the catalog store (advertisers, campaigns, ads), created on first start and seeded from the model directory's catalog.jsonl; empty: `<dataDir>/catalog.sqlite`. Ignored when `databaseUrl` is set.",
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: '`postgres://` or `postgresql://` URL of a PostgreSQL database holding the catalog store, shared by every replica; empty: the SQLite file `catalogDatabase`.',
  },
  maxImportBytes: {
    env: 'ADSERVE_MAX_IMPORT_BYTES',
    type: 'integer',
    min: 1,
    max: 16 * 1024 * 1024 * 1024,
    default: 512 * 1024 * 1024,
    doc: 'Largest body of `POST /v1/admin/catalog/import` in bytes; larger ones get 413 (lines already written stay).',
  },
  adminPort: {
    env: 'ADSERVE_ADMIN_PORT',
    type: 'integer',
    min: 0,
    max: 65535,
    default: 0,
    doc: 'TCP port of a listener that serves only the admin API, apart from ad traffic (whose port then answers 404 for `/v1/admin/`); 0: the admin API shares `port`.',
  },
  adminHost: {
    env: 'ADSERVE_ADMIN_HOST',
    type: 'string',
    nonEmpty: false,
    default: '',
    doc: 'Address the admin listener binds to when `adminPort` is set; empty: `host`.',
  },
} as const satisfies Record<string, Setting>;

type SettingValue<S> = S extends { type: 'choice'; values: readonly (infer V)[] }
  ? V
  : S extends { type: 'integer' | 'number' }
    ? number
    : S extends { type: 'string' }
      ? string
      : S extends { type: 'list' }
        ? string[]
        : S extends { type: 'numbers' }
          ? number[]
          : S extends { type: 'placements' }
            ? Partial<Record<PlacementName, PlacementRules>>
            : never;

export type Config = { -readonly [K in keyof typeof settings]: SettingValue<(typeof settings)[K]> };
export type LogLevel = Config['logLevel'];
export type IndexKind = Config['indexKind'];
export type IvfScan = Config['ivfScan'];
export type AuctionKind = Config['auction'];
export type FusionKind = Config['fusion'];

const settingEntries = Object.entries(settings) as Array<[keyof Config, Setting]>;

function copyDefault(setting: Setting): unknown {
  const value = setting.default;
  return Array.isArray(value) ? [...value] : typeof value === 'object' ? { ...value } : value;
}

export const defaults: Readonly<Config> = Object.fromEntries(settingEntries.map(([key, setting]) => [key, copyDefault(setting)])) as Config;

/** Environment variable naming a JSON file whose keys are Config keys. */
export const configFileEnv = 'ADSERVE_CONFIG';

export class ConfigError extends Error {}

function checkInteger(name: string, min: number, max: number, raw: unknown): number {
  const value = typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer in ${min}..${max} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

function checkNumber(name: string, min: number, max: number, raw: unknown): number {
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a number in ${min}..${max} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

function checkChoice(name: string, values: readonly string[], raw: unknown): string {
  if (typeof raw !== 'string' || !values.includes(raw)) throw new ConfigError(`${name} must be one of ${values.join(', ')} (got ${JSON.stringify(raw)})`);
  return raw;
}

function checkPlacements(name: string, raw: unknown): Config['placements'] {
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new ConfigError(`${name} must be a JSON object`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${name} must be an object keyed by placement`);
  const out: Config['placements'] = {};
  for (const [placement, rules] of Object.entries(value)) {
    const where = `${name}.${placement}`;
    if (!(placementNames as readonly string[]).includes(placement))
      throw new ConfigError(`${name}: unknown placement "${placement}" (${placementNames.join(', ')})`);
    if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) throw new ConfigError(`${where} must be an object`);
    const checked: PlacementRules = {};
    // A placement's override admits what the global key of the same name admits.
    for (const [field, setting] of Object.entries(rules as Record<string, unknown>)) {
      if (field === 'auction') checked.auction = checkChoice(`${where}.auction`, settings.auction.values, setting) as AuctionKind;
      else if (field === 'reserveCpcMicros' || field === 'reserveCpmMicros' || field === 'reserveCpaMicros')
        checked[field] = checkInteger(`${where}.${field}`, settings[field].min, settings[field].max, setting);
      else if (field === 'minQualityScore')
        checked.minQualityScore = checkNumber(`${where}.minQualityScore`, settings.minQualityScore.min, settings.minQualityScore.max, setting);
      else if (field === 'ranking') {
        const weights = setting as Record<string, unknown>;
        const weight = (weightName: string): number => checkNumber(`${where}.ranking.${weightName}`, 0, 1e6, weights?.[weightName] ?? 0);
        if (typeof setting !== 'object' || setting === null || Object.keys(setting).some((weightName) => !['ctr', 'cvr', 'value'].includes(weightName))) {
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

/** Checks one value against its setting; `name` is what an error calls it (the environment variable when the value came from there). */
function checkSetting(name: string, setting: Setting, raw: unknown): unknown {
  switch (setting.type) {
    case 'string':
      if (typeof raw !== 'string' || (setting.nonEmpty && raw.length === 0))
        throw new ConfigError(`${name} must be a ${setting.nonEmpty ? 'non-empty ' : ''}string`);
      return raw;
    case 'integer':
      return checkInteger(name, setting.min, setting.max, raw);
    case 'number':
      return checkNumber(name, setting.min, setting.max, raw);
    case 'choice':
      return checkChoice(name, setting.values, raw);
    case 'list': {
      const items =
        typeof raw === 'string'
          ? raw
              .split(',')
              .map((item) => item.trim())
              .filter((item) => item !== '')
          : raw;
      if (!Array.isArray(items) || items.some((item) => typeof item !== 'string' || item === ''))
        throw new ConfigError(`${name} must be a list of non-empty strings`);
      return items;
    }
    case 'numbers': {
      const items: unknown = typeof raw === 'string' ? raw.split(',').map((item) => (item.trim() === '' ? Number.NaN : Number(item))) : raw;
      const inRange = (item: unknown): item is number => typeof item === 'number' && Number.isFinite(item) && item >= setting.min && item <= setting.max;
      if (!Array.isArray(items) || items.length === 0 || items.length > setting.maxLength || !items.every(inRange)) {
        throw new ConfigError(`${name} must be a list of 1..${setting.maxLength} numbers in ${setting.min}..${setting.max} (got ${JSON.stringify(raw)})`);
      }
      if (setting.nonIncreasing && items.some((item: number, i) => i > 0 && item > items[i - 1]))
        throw new ConfigError(`${name} must not increase from one entry to the next (got ${JSON.stringify(raw)})`);
      return [...items];
    }
    case 'placements':
      return checkPlacements(name, raw);
  }
}

/** Rules that tie several keys together, checked once each key is valid on its own. */
function checkAcrossKeys(config: Config): void {
  if (config.defaultTmaxMs > config.maxTmaxMs) throw new ConfigError('defaultTmaxMs must not exceed maxTmaxMs');
  if (config.scoreCandidates > config.annCandidates) throw new ConfigError('scoreCandidates must not exceed annCandidates');
  if (config.lightSimilarityWeight + config.lightValueWeight + config.lightCtrWeight + config.lightQualityWeight <= 0) {
    throw new ConfigError('the lightweight-score weights (lightSimilarityWeight, lightValueWeight, lightCtrWeight, lightQualityWeight) need a positive sum');
  }
  // VCG prices slot k from the click-through drop θ_k - θ_(k+1): a slot without a positive θ would be sold for nothing.
  if (config.positionEffects.length < config.maxSlots || config.positionEffects.some((theta) => theta <= 0)) {
    throw new ConfigError(`positionEffects needs a positive value for each of the maxSlots (${config.maxSlots}) positions`);
  }
  if (!/^[A-Z]{3}$/.test(config.currency))
    throw new ConfigError(`currency must be an ISO 4217 code of three upper-case letters (got ${JSON.stringify(config.currency)})`);
  if (config.eventTokenKey !== '' && config.eventTokenKey.length < 32) throw new ConfigError('eventTokenKey must be at least 32 characters');
  const reserves: Array<[string, number | undefined]> = [
    ['reserveCpcMicros', config.reserveCpcMicros],
    ['reserveCpmMicros', config.reserveCpmMicros],
    ['reserveCpaMicros', config.reserveCpaMicros],
  ];
  for (const [placement, rules] of Object.entries(config.placements)) {
    for (const field of ['reserveCpcMicros', 'reserveCpmMicros', 'reserveCpaMicros'] as const)
      reserves.push([`placements.${placement}.${field}`, rules?.[field]]);
  }
  for (const [name, value] of reserves)
    if (value !== undefined && value > config.maxBidMicros) throw new ConfigError(`${name} must not exceed maxBidMicros (${config.maxBidMicros})`);
  if (config.maxBidMicros > config.maxBudgetMicros) throw new ConfigError('maxBidMicros must not exceed maxBudgetMicros');
  if (config.eventTokenPreviousKeys.some((key) => key.length < 32)) throw new ConfigError('every eventTokenPreviousKeys entry must be at least 32 characters');
  if (config.eventTokenPreviousKeys.length > 0 && config.eventTokenKey === '')
    throw new ConfigError('eventTokenPreviousKeys needs an eventTokenKey to seal new tokens with');
  if (config.databaseUrl !== '' && !/^postgres(ql)?:\/\/[^\s]+$/.test(config.databaseUrl))
    throw new ConfigError('databaseUrl must be a postgres:// or postgresql:// URL');
  if (config.adminPort !== 0 && config.adminPort === config.port) throw new ConfigError('adminPort must differ from port (0 shares the ad listener)');
  if (config.redisUrl !== '' && !/^rediss?:\/\/[^\s]+$/.test(config.redisUrl))
    throw new ConfigError(`redisUrl must be a redis:// or rediss:// URL (got ${JSON.stringify(config.redisUrl)})`);
}

function readConfigFile(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a JSON object`);
  for (const key of Object.keys(parsed)) if (!Object.hasOwn(settings, key)) throw new ConfigError(`config file ${file}: unknown key "${key}"`);
  return parsed as Record<string, unknown>;
}

/** Builds the validated config: defaults, then the JSON file, then environment variables. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const file = env[configFileEnv] ? readConfigFile(env[configFileEnv]) : {};
  const config: Record<string, unknown> = {};
  for (const [key, setting] of settingEntries) {
    const fromEnv = env[setting.env];
    if (fromEnv !== undefined) config[key] = checkSetting(setting.env, setting, fromEnv);
    else config[key] = checkSetting(key, setting, Object.hasOwn(file, key) ? file[key] : defaults[key]);
  }
  checkAcrossKeys(config as Config);
  return config as Config;
}

/**
 * Sets what the native libraries read once, when the addon loads them, and never again: libgomp
 * takes its wait policy from OMP_WAIT_POLICY in its load-time constructor and has no call to change
 * it later. Its default spins idle threads for a while after each parallel region, which on a small
 * box takes the core that libtorch's next operation or the JS thread needs (engine-only, 2 threads:
 * about 420 -> 520 requests/s at 1M ads), so PASSIVE unless the environment already names a policy.
 */
export function prepareNativeLoad(env: NodeJS.ProcessEnv = process.env): void {
  env.OMP_WAIT_POLICY ??= 'PASSIVE';
}
