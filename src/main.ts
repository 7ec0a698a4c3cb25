// The adserve daemon: load config, start the server, drain on SIGTERM/SIGINT.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { readLegacyChanges, retireLegacyChanges } from './catalog/catalog_changes';
import { catalogFileLines } from './catalog/catalog_file';
import { type Config, ConfigError, loadConfig } from './config';
import { addon, nativeGcmSealerOf } from './engine/addon';
import { LoadProgress } from './engine/load_progress';
import { type ModelDir, ModelDirError, readModelDir, verifySeedCatalog } from './engine/model_dir';
import { startupModelDir } from './engine/model_repository';
import { cannotFill, warmUp, warmUpRequests } from './engine/warm_up';
import { ModelSwapper } from './pipeline/model_swap';
import { openServing, type Serving } from './engine/serving';
import { ServingCanary } from './engine/serving_canary';
import { DataDirLockedError, lockDataDir } from './data_dir_lock';
import { createLogger, type Logger } from './log';
import { type DecisionContext, decideAds } from './pipeline/ad_decision';
import { systemClock } from './pipeline/clock';
import { DecisionScratch } from './pipeline/scratch';
import { type SigningKey, signingKeyOf } from './money/event_token';
import { Ledger } from './money/ledger';
import { DecisionCounters, type DecisionSink } from './money/decision_counters';
import { Money } from './money/money';
import { RedisSpendStore } from './money/redis_spend';
import { LocalSpendStore, type SpendStore } from './money/spend_store';
import { createMetrics, type Metrics, registerEngineMetrics, registerMoneyMetrics, registerServingMetrics } from './metrics';
import { projectRoot } from './paths';
import { type Server, startServer } from './server/app';
import type { Readiness } from './server/health';
import { seedFromCatalog } from './store/seed';
import { StoreError } from './store/errors';
import { CatalogStore } from './store/store';
import { StoreSync } from './pipeline/store_sync';

/** The key new tokens are sealed with, then the rotated-out keys that still open older ones. */
function eventTokenKeys(config: Config): SigningKey[] {
  const current = signingKeyOf(config.eventTokenKey === '' ? randomBytes(32) : Buffer.from(config.eventTokenKey), nativeGcmSealerOf);
  return [current, ...config.eventTokenPreviousKeys.map((secret) => signingKeyOf(Buffer.from(secret)))];
}

/** Opens the catalog store and applies its migrations: the SQLite file in dataDir, or the fleet's PostgreSQL. */
async function openCatalogStore(config: Config, log: Logger): Promise<CatalogStore> {
  const location =
    config.databaseUrl !== ''
      ? { kind: 'postgres' as const, url: config.databaseUrl }
      : {
          kind: 'sqlite' as const,
          file: path.resolve(projectRoot, config.catalogDatabase === '' ? path.join(config.dataDir, 'catalog.sqlite') : config.catalogDatabase),
        };
  if (location.kind === 'sqlite') mkdirSync(path.dirname(location.file), { recursive: true });
  const store = await CatalogStore.open({ location, limits: config, onError: (error) => log.warn('catalog store connection', { error: error.message }) });
  log.info('catalog store', { backend: location.kind, ...(location.kind === 'sqlite' ? { file: location.file } : {}), seq: await store.currentSeq() });
  return store;
}

/**
 * A store created since its last seed gets the model directory's catalog.jsonl, streamed (a model
 * directory without one leaves it empty). A catalog the store refuses is logged and the daemon
 * serves the model's own catalog (StoreSync leaves an unseeded store's rows alone); the next start
 * tries again.
 */
async function seedCatalogStore(store: CatalogStore, model: ModelDir, log: Logger, progress: LoadProgress): Promise<void> {
  if (!(await store.seedPending())) return;
  progress.enter('seeding catalog store');
  const started = Date.now();
  try {
    const { seedCatalog } = model;
    await verifySeedCatalog(model);
    const result = await seedFromCatalog(store, seedCatalog ? catalogFileLines(seedCatalog.file) : [], { catalogSha256: seedCatalog?.sha256 ?? '' });
    log.info('catalog store seeded', { advertisers: result.advertisers, campaigns: result.campaigns, ads: result.ads, seconds: (Date.now() - started) / 1000 });
  } catch (error) {
    log.error('catalog store not seeded from the model directory', { error: (error as Error).message });
  }
}

/**
 * Writes the edits an older daemon recorded in this data directory into the store, once the store
 * holds the rows they edit; an edit of a row the store lacks is logged and dropped.
 */
async function moveLegacyChanges(store: CatalogStore, config: Config, log: Logger): Promise<void> {
  const dataDir = path.resolve(projectRoot, config.dataDir);
  const legacy = readLegacyChanges(dataDir);
  if (!legacy || (await store.seedPending())) return;
  const edits = [
    ...Object.entries(legacy.campaigns).map(([id, patch]) => ['campaign', id, patch] as const),
    ...Object.entries(legacy.ads).map(([id, status]) => ['ad', id, { status }] as const),
  ];
  for (const [entity, id, patch] of edits) {
    try {
      await store.update(entity, id, patch);
    } catch (error) {
      // A row gone from the catalog, or an edit its rules now refuse; anything else (the database) stops the start.
      if (!(error instanceof StoreError) || error.code === 'E_MIGRATION') throw error;
      log.warn('catalog-changes.json edit not moved to the store', { entity, id, error: error.message });
    }
  }
  retireLegacyChanges(dataDir);
  log.info('catalog-changes.json moved into the catalog store', { edits: edits.length });
}

async function loadServing(
  config: Config,
  log: Logger,
  money: Money,
  canary: ServingCanary,
  progress: LoadProgress,
  store: CatalogStore,
  sync: StoreSync,
): Promise<Serving | undefined> {
  const dir = startupModelDir(config);
  if (!existsSync(path.join(dir, 'manifest.json'))) {
    log.warn('no model directory: answering every ad request with status NoEngine', { modelDir: dir });
    return undefined;
  }
  const started = Date.now();
  progress.enter('reading model directory');
  const model = readModelDir(dir);
  await seedCatalogStore(store, model, log, progress);
  await moveLegacyChanges(store, config, log);
  const serving = await openServing(model, config, money, { progress, catalog: (opened, options) => sync.load(opened, options) });
  progress.enter('following the catalog store');
  await sync.adopt(serving);
  // The engine's warm-up, then the decision path's (warmDecisionPath).
  progress.enter('warming up', 2 * warmUpRequests().length);
  // A model that loads but cannot fill still starts the daemon, unready, so that one that can may
  // be swapped in without a restart.
  canary.record(serving, cannotFill(await warmUp(serving, () => progress.advance())));
  const stats = serving.engine.stats();
  log.info('engine ready', {
    model: serving.modelVersion,
    ads: stats.ads,
    index: stats.index,
    fusionPrecision: stats.fusionPrecision,
    fusionKernel: stats.fusionKernel,
    seconds: (Date.now() - started) / 1000,
  });
  return serving;
}

async function openSpendStore(
  config: Config,
  log: Logger,
  metrics: Metrics,
  servings: () => Serving[],
  spendChanged: (campaigns: string[]) => void,
): Promise<SpendStore> {
  if (config.redisUrl === '') {
    const ledger = await Ledger.open(path.resolve(projectRoot, config.dataDir), {
      snapshotEvents: config.ledgerSnapshotEvents,
      reportRetentionHours: config.reportRetentionDays * 24,
      // An event whose token is older is refused as expired, so its id and its ad's record no longer matter.
      eventRetentionMs: (config.eventTokenTtlSeconds + config.attributionWindowSeconds) * 1000,
      impressionRetentionMs: () => (servings().length === 0 ? undefined : Math.max(0, ...servings().map((serving) => serving.frequency.longestWindowMs))),
      onSnapshot: (stats) => log.info('spend ledger snapshot', { ...stats }),
      threadCpuNanos: () => addon.threadCpuNanos(),
      onCommit: (seconds) => metrics.ledgerFsync.observe(seconds),
    });
    log.info('spend ledger', { dataDir: config.dataDir, recoveredEvents: ledger.eventsRecorded });
    return new LocalSpendStore(ledger, config.attributionWindowSeconds * 1000);
  }
  const store = await RedisSpendStore.open({
    url: config.redisUrl,
    syncMs: config.redisSyncMs,
    // Event ids must outlive every token that could carry them.
    retentionSeconds: config.eventTokenTtlSeconds + 86_400,
    attributionWindowMs: config.attributionWindowSeconds * 1000,
    // Two days past the retention: cells are kept by local day, up to a day off the UTC one.
    reportRetentionSeconds: (config.reportRetentionDays + 2) * 86_400,
    impressionRetentionMs: () => Math.max(0, ...servings().map((serving) => serving.frequency.longestWindowMs)),
    onSpendChange: spendChanged,
    onCommandError: (operation) => metrics.redisErrors.inc({ operation }),
    log,
  });
  log.info('shared spend state in redis', { events: store.eventCount(), syncMs: config.redisSyncMs });
  return store;
}

/** The decision path's report counters, persisted beside the spend store's own cells. */
function openReportCounters(config: Config, log: Logger, spend: SpendStore, money: Money): DecisionCounters {
  const sink: DecisionSink =
    spend instanceof RedisSpendStore
      ? { kind: 'redis', add: (cells) => spend.addReportCounters(cells) }
      : { kind: 'file', dir: path.resolve(projectRoot, config.dataDir) };
  return new DecisionCounters(sink, config.reportRetentionDays * 24, (campaignId) => money.timeZoneOf(campaignId), log);
}

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`adserve: invalid configuration: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

/** Whether the serving model can take traffic, for /readyz. */
function readinessOf(config: Config, decision: DecisionContext, canary: ServingCanary): Readiness {
  if (!decision.serving) return { ready: false, reason: `no engine loaded (no model at ${config.modelDir}; run npm run train or POST /v1/admin/models)` };
  const problem = canary.problemOf(decision.serving);
  return problem ? { ready: false, reason: `the serving model cannot fill: ${problem}` } : { ready: true, reason: '' };
}

/** Readies the process for its first requests, while none is admitted. */
async function warmDecisionPath(decision: DecisionContext, progress: LoadProgress, reportCounters: DecisionCounters): Promise<void> {
  // The engine is warm; run the whole decision path a few times too, so the first real requests do
  // not pay V8's first compilations of the pipeline against their deadline.
  if (decision.serving) {
    for (const request of warmUpRequests()) {
      await decideAds(request, decision);
      progress.advance();
    }
  }
  // Only now: no report shows the warm-up's decisions.
  decision.reportCounters = reportCounters;
  // Loading a catalog leaves its rows, read from the store a page at a time, as garbage. Collect
  // it now, while no request waits; V8 would otherwise do it in one long pause under traffic.
  (globalThis as { gc?: () => void }).gc?.();
}

function startTimers(config: Config, decision: DecisionContext, money: Money, canary: ServingCanary): void {
  // Pacing follows the ledger: every campaign's participation is recomputed every 10 s, and daily
  // caps lift within 10 s of a campaign's local midnight.
  const pacingTick = (): void => money.tick(Date.now());
  pacingTick();
  setInterval(pacingTick, 10_000).unref();
  setInterval(() => void canary.check(decision.serving), config.canaryIntervalMs).unref();
  decision.reportCounters?.start(config.reportFlushMs);
}

/**
 * Drains on the first SIGTERM or SIGINT: /readyz turns 503 at once, everything else is served for
 * drainDelayMs more, then the listener closes and in-flight work finishes. A signal during the
 * delay ends it; one after it exits at once.
 */
function stopOnSignals(
  config: Config,
  log: Logger,
  server: Server,
  spend: SpendStore,
  catalog: { store: CatalogStore; sync: StoreSync },
  startup: LoadProgress,
  reportCounters: DecisionCounters,
): void {
  let phase: 'serving' | 'delaying' | 'draining' = 'serving';
  let endDelay = (): void => undefined;
  const stop = (signal: NodeJS.Signals): void => {
    if (phase === 'draining') {
      log.warn('second signal, exiting without draining', { signal });
      process.exit(1);
    }
    if (phase === 'delaying') {
      log.info('second signal, ending the drain delay', { signal });
      return endDelay();
    }
    phase = 'delaying';
    server.unready();
    // No load balancer routes to a replica that never answered ready, so there is nothing to wait for.
    const delayMs = startup.loading ? 0 : config.drainDelayMs;
    log.info('unready', { signal, drainDelayMs: delayMs });
    new Promise<void>((done) => {
      const timer = setTimeout(done, delayMs);
      endDelay = () => {
        clearTimeout(timer);
        done();
      };
    })
      .then(() => {
        phase = 'draining';
        log.info('draining', { graceMs: config.shutdownGraceMs });
        return server.drain(config.shutdownGraceMs);
      })
      .then(async ({ drained, abandoned }) => {
        // Before the spend store: in fleet mode the counters flush into its Redis.
        await reportCounters.close();
        await spend.close();
        await catalog.sync.close();
        await catalog.store.close();
        log.info('stopped', { drained, abandoned });
        process.exit(0);
      })
      .catch((error: Error) => {
        log.error('shutdown failed', { error: error.message });
        process.exit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger(config.logLevel);
  const version = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).version as string;
  const { workerThreads, computeThreads, queueCapacity } = config;
  addon.configure({ workerThreads, computeThreads, queueCapacity, hugePages: config.hugePages === 'on' });
  const build = addon.buildInfo();
  log.info('native engine', { ...build });
  const metrics = createMetrics(build, version, config.eventLoopLagResolutionMs);
  const tokenKeys = eventTokenKeys(config);
  if (config.eventTokenKey === '') log.warn('no eventTokenKey configured: event tokens are signed with a random key and stop verifying after a restart');
  const servings = (): Serving[] => [decision.serving, decision.challenger?.serving].filter((serving): serving is Serving => serving !== undefined);
  lockDataDir(path.resolve(projectRoot, config.dataDir));
  const spend = await openSpendStore(config, log, metrics, servings, (campaigns) => money.spendChanged(campaigns, Date.now()));
  // Created once: every model that serves attaches to it, so spend, caps and pacing outlive swaps.
  const money = new Money(spend);
  const reportCounters = openReportCounters(config, log, spend, money);
  const store = await openCatalogStore(config, log);
  const sync = new StoreSync({ store, money, log, dataDir: path.resolve(projectRoot, config.dataDir) });
  const canary = new ServingCanary(log);
  const startup = new LoadProgress(log);
  const decision: DecisionContext = {
    config,
    serving: undefined,
    signingKey: tokenKeys[0]!,
    metrics,
    clock: systemClock,
    random: Math.random,
    scratch: new DecisionScratch(),
  };
  registerEngineMetrics(metrics, () => decision.serving?.engine.stats());
  registerMoneyMetrics(metrics, money);
  registerServingMetrics(metrics, () => servings().map((serving) => ({ arm: serving === decision.serving ? 'a' : 'b', serving })));
  const server = await startServer({
    config,
    metrics,
    log,
    decision,
    swapper: new ModelSwapper(decision, config, projectRoot, money, sync),
    sync,
    events: { money, metrics, keys: tokenKeys, servings },
    readiness: () => readinessOf(config, decision, canary),
    startup,
    store,
  });
  // Listening before the model loads lets liveness probes pass during a long load; until it ends,
  // /readyz says where it stands and ad, event and admin requests answer 503.
  log.info('listening', {
    host: config.host,
    port: server.port,
    version,
    ...(server.adminPort === undefined ? {} : { adminHost: config.adminHost === '' ? config.host : config.adminHost, adminPort: server.adminPort }),
  });
  stopOnSignals(config, log, server, spend, { store, sync }, startup, reportCounters);
  decision.serving = await loadServing(config, log, money, canary, startup, store, sync);
  await warmDecisionPath(decision, startup, reportCounters);
  startup.finish();
  log.info('started', { ready: readinessOf(config, decision, canary).ready, seconds: startup.state().seconds });
  startTimers(config, decision, money, canary);
}

main().catch((error: Error) => {
  // A refused model directory is the operator's to fix, not a bug: its reason is the whole story.
  const reason =
    error instanceof ModelDirError ? `model refused: ${error.message}` : error instanceof DataDirLockedError ? error.message : (error.stack ?? error.message);
  process.stderr.write(`adserve: ${reason}\n`);
  process.exit(1);
});
