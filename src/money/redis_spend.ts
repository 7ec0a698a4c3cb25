// The shared store for several daemons (REDIS_URL): event ids, the event order of each served ad,
// spend per campaign and users' impression history live in Redis, and one Lua script decides and
// applies an event atomically, so replicas can never charge one event twice nor overrun a budget.
// Each daemon mirrors the spend totals every `syncMs` into its LedgerState, where budgets and
// pacing read them: a campaign exhausted through another replica drops out here within one sync.
// Durability is Redis's: run it with appendonly yes and appendfsync always (checked at connect).
import { Redis } from 'ioredis';

import type { Logger } from '../log';
import type { Nanos } from './amounts';
import { emptyState, type LedgerState } from './ledger';
import { type Charge, type Refusal, refusalError, type SpendStore } from './spend_store';
import { cellKeyOf, type CounterName, counterIndex, counterNames, type Counters, parseCellKey } from './report_cells';
import { dailySpendKey } from './spend_totals';

const prefix = 'adserve:';
const eventKey = (id: string): string => `${prefix}event:${id}`;
const serveKey = (serve: string): string => `${prefix}serve:${serve}`;
const dailyKey = (day: number): string => `${prefix}spend:day:${day}`;
const lifetimeKey = `${prefix}spend:lifetime`;
const impressionsKey = (user: string): string => `${prefix}impressions:${user}`;
const eventCountKey = `${prefix}events`;
/** Report cells of one local day: field `<cell key>\u0001<counter name>`, its count. */
export const reportDayKey = (day: number): string => `${prefix}report:${day}`;
export const reportFieldSeparator = '\u0001';
const typeCounters = { impression: 'impressions', click: 'clicks', conversion: 'conversions' } as const;

// KEYS: event id, serve, today's spend, lifetime spend, the user's impressions, the event counter,
// the report day of the event's cell, the report day of its served cell.
// ARGV: type, price, daily budget, lifetime budget (-1: none), campaign, time ms, event id,
// retention s (event ids and serves), impression retention ms (0: keep none), member separator,
// attribution window ms, the event cell's field prefix, the served cell's field prefix, the
// counter of the type, report retention s.
// The report counters move in the same script as the charge, so they are exactly what was billed.
// Mirrors refusalOf and remainingNanos in spend_store.ts and budgets.ts.
const recordScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate_event'} end
local kind = ARGV[1]
if redis.call('HEXISTS', KEYS[2], kind) == 1 then return {'duplicate_type'} end
if kind == 'click' and redis.call('HEXISTS', KEYS[2], 'impression') == 0 then return {'needs_impression'} end
if kind == 'conversion' then
  local clickedAt = redis.call('HGET', KEYS[2], 'click')
  if not clickedAt then return {'needs_click'} end
  if tonumber(ARGV[6]) - tonumber(clickedAt) > tonumber(ARGV[11]) then return {'outside_attribution_window'} end
end
local campaign = ARGV[5]
local daily = tonumber(redis.call('HGET', KEYS[3], campaign) or '0')
local lifetime = tonumber(redis.call('HGET', KEYS[4], campaign) or '0')
local charge = tonumber(ARGV[2])
local dailyBudget = tonumber(ARGV[3])
local lifetimeBudget = tonumber(ARGV[4])
if dailyBudget >= 0 then charge = math.min(charge, math.max(0, dailyBudget - daily)) end
if lifetimeBudget >= 0 then charge = math.min(charge, math.max(0, lifetimeBudget - lifetime)) end
local retention = tonumber(ARGV[8])
redis.call('SET', KEYS[1], '1', 'EX', retention)
redis.call('HSET', KEYS[2], kind, ARGV[6])
redis.call('EXPIRE', KEYS[2], retention)
if charge > 0 then
  daily = redis.call('HINCRBY', KEYS[3], campaign, string.format('%d', charge))
  redis.call('EXPIRE', KEYS[3], 3 * 86400)
  lifetime = redis.call('HINCRBY', KEYS[4], campaign, string.format('%d', charge))
end
local keepMs = tonumber(ARGV[9])
if kind == 'impression' and keepMs > 0 then
  local now = tonumber(ARGV[6])
  redis.call('ZADD', KEYS[5], now, campaign .. ARGV[10] .. ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - keepMs)
  redis.call('PEXPIRE', KEYS[5], keepMs)
end
redis.call('HINCRBY', KEYS[7], ARGV[12] .. ARGV[14], 1)
if charge > 0 then redis.call('HINCRBY', KEYS[7], ARGV[12] .. 'spendNanos', string.format('%d', charge)) end
redis.call('EXPIRE', KEYS[7], ARGV[15])
if tonumber(ARGV[2]) > 0 then
  redis.call('HINCRBY', KEYS[8], ARGV[13] .. 'billedValueNanos', ARGV[2])
  redis.call('EXPIRE', KEYS[8], ARGV[15])
end
local events = redis.call('INCR', KEYS[6])
return {'ok', string.format('%d', charge), string.format('%d', daily), string.format('%d', lifetime), events}
`;

// Campaign ids never hold a NUL; event ids may hold anything after it.
const memberSeparator = '\u0000';

type RecordReply = [Refusal] | ['ok', string, string, string, number];

interface ScriptedRedis extends Redis {
  recordEvent(...keysThenArgs: Array<string | number>): Promise<RecordReply>;
}

/** What a failed Redis command was for, as adserve_redis_command_errors_total labels it. */
export type RedisOperation = 'record' | 'impressions' | 'sync' | 'report';

export interface RedisStoreOptions {
  url: string;
  /** How often spend totals are mirrored from Redis, in milliseconds. */
  syncMs: number;
  /** How long event ids and served-ad event records are kept, in seconds (past any token's expiry). */
  retentionSeconds: number;
  /** How long report cells are kept, in seconds. */
  reportRetentionSeconds: number;
  /** How long after its click a conversion still counts, in milliseconds. */
  attributionWindowMs: number;
  /** How long impressions are kept for frequency caps (the longest cap window), in milliseconds. */
  impressionRetentionMs: () => number;
  /** Called with the campaigns whose spend changed at a sync (budgets re-check them). */
  onSpendChange: (campaigns: string[]) => void;
  /** Called for each command that failed or did not answer within its timeout. */
  onCommandError?: (operation: RedisOperation) => void;
  log: Logger;
}

export class RedisSpendStore implements SpendStore {
  readonly state: LedgerState = emptyState();
  readonly failure = undefined;
  private events = 0;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;

  private constructor(
    private readonly redis: ScriptedRedis,
    private readonly options: RedisStoreOptions,
  ) {}

  /** Connects, checks durability settings and mirrors spend once before the daemon serves. */
  static async open(options: RedisStoreOptions): Promise<RedisSpendStore> {
    // No offline queue and one retry: while Redis is away, events fail fast with 503 instead of
    // piling up, and the ad path serves without the campaigns it cannot check.
    const redis = new Redis(options.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000 }) as ScriptedRedis;
    let lastError = '';
    redis.on('error', (error: Error) => {
      if (error.message !== lastError) options.log.warn('redis error', { error: error.message });
      lastError = error.message;
    });
    redis.on('ready', () => (lastError = ''));
    redis.defineCommand('recordEvent', { numberOfKeys: 8, lua: recordScript });
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      throw new Error(`cannot reach Redis at ${options.url}: ${(error as Error).message}`, { cause: error });
    }
    const [, appendonly] = (await redis.config('GET', 'appendonly')) as string[];
    const [, fsync] = (await redis.config('GET', 'appendfsync')) as string[];
    if (appendonly !== 'yes' || fsync !== 'always') {
      options.log.warn('redis is not fsyncing every write: an acknowledged event can be lost if Redis crashes', { appendonly, appendfsync: fsync });
    }
    const store = new RedisSpendStore(redis, options);
    // Nothing serves yet: budgets built after this read the mirrored totals themselves.
    await store.sync(false);
    store.timer = setInterval(() => {
      store.syncing ??= store.sync().finally(() => (store.syncing = undefined));
    }, options.syncMs);
    store.timer.unref();
    return store;
  }

  eventCount(): number {
    return this.events;
  }

  async record(charge: Charge): Promise<Nanos> {
    const { budgets, report, campaignId, adId } = charge;
    const { advertiserId, placement, timeZone } = report;
    const reply = await this.counted(
      'record',
      this.redis.recordEvent(
        eventKey(charge.id),
        serveKey(charge.serve),
        dailyKey(charge.day),
        lifetimeKey,
        impressionsKey(charge.user),
        eventCountKey,
        reportDayKey(Math.floor(report.hour / 24)),
        reportDayKey(Math.floor(report.servedHour / 24)),
        charge.type,
        charge.priceNanos,
        Number.isFinite(budgets.dailyNanos) ? budgets.dailyNanos : -1,
        Number.isFinite(budgets.lifetimeNanos) ? budgets.lifetimeNanos : -1,
        charge.campaignId,
        charge.timeMs,
        charge.id,
        this.options.retentionSeconds,
        charge.user === '' ? 0 : this.options.impressionRetentionMs(),
        memberSeparator,
        this.options.attributionWindowMs,
        cellKeyOf({ campaignId, adId, advertiserId, placement, timeZone, hour: report.hour }) + reportFieldSeparator,
        cellKeyOf({ campaignId, adId, advertiserId, placement, timeZone, hour: report.servedHour }) + reportFieldSeparator,
        typeCounters[charge.type],
        this.options.reportRetentionSeconds,
      ),
    );
    if (reply[0] !== 'ok') throw refusalError(reply[0], charge);
    const [, chargeNanos, daily, lifetime, events] = reply;
    // This replica sees its own charges at once; other replicas' arrive with the next sync.
    this.raise(this.state.dailyNanos, dailySpendKey(charge.campaignId, charge.day), Number(daily));
    this.raise(this.state.lifetimeNanos, charge.campaignId, Number(lifetime));
    this.events = Math.max(this.events, events);
    if (Number(chargeNanos) > 0) this.options.onSpendChange([charge.campaignId]);
    return Number(chargeNanos);
  }

  async reportCells(fromDay: number, toDay: number): Promise<Iterable<[string, Counters]>> {
    const days = Array.from({ length: toDay - fromDay + 1 }, (_, i) => fromDay + i);
    const hashes = await this.counted('report', Promise.all(days.map((day) => this.redis.hgetall(reportDayKey(day)))));
    const cells = new Map<string, Counters>();
    for (const hash of hashes) {
      for (const [field, count] of Object.entries(hash)) {
        const split = field.lastIndexOf(reportFieldSeparator);
        const key = field.slice(0, split);
        const counter = counterIndex[field.slice(split + 1) as CounterName];
        if (counter === undefined) continue;
        let counters = cells.get(key);
        if (!counters) cells.set(key, (counters = new Array<number>(counterNames.length).fill(0)));
        counters[counter] = Number(count);
      }
    }
    return cells;
  }

  /** Adds decision counters to report cells (one transaction per flush). */
  async addReportCounters(cells: Iterable<[string, Counters]>): Promise<void> {
    const transaction = this.redis.multi();
    const touched = new Set<string>();
    for (const [key, counters] of cells) {
      const day = reportDayKey(Math.floor(parseCellKey(key).hour / 24));
      touched.add(day);
      counters.forEach((amount, i) => {
        if (amount !== 0) transaction.hincrby(day, key + reportFieldSeparator + counterNames[i]!, amount);
      });
    }
    for (const day of touched) transaction.expire(day, this.options.reportRetentionSeconds);
    await this.counted('report', transaction.exec());
  }

  async impressionsOf(user: string, sinceMs: number, timeoutMs: number): Promise<Map<string, number[]> | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('redis answered too late')), Math.max(0, timeoutMs))));
    const read = Promise.race([this.redis.zrangebyscore(impressionsKey(user), `(${sinceMs}`, '+inf', 'WITHSCORES'), deadline]).finally(() =>
      clearTimeout(timer),
    );
    const flat = await this.counted('impressions', read);
    if (flat.length === 0) return undefined;
    const byCampaign = new Map<string, number[]>();
    for (let i = 0; i < flat.length; i += 2) {
      const member = flat[i]!;
      const campaign = member.slice(0, member.indexOf(memberSeparator));
      const times = byCampaign.get(campaign);
      if (times) times.push(Number(flat[i + 1]));
      else byCampaign.set(campaign, [Number(flat[i + 1])]);
    }
    return byCampaign;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.syncing;
    await this.redis.quit();
  }

  private counted<T>(operation: RedisOperation, command: Promise<T>): Promise<T> {
    return command.catch((error: unknown) => {
      this.options.onCommandError?.(operation);
      throw error;
    });
  }

  /** Raises a mirrored total; totals only grow, so an older reply racing a newer sync cannot lower one. */
  private raise(totals: Map<string, Nanos>, key: string, nanos: Nanos): boolean {
    if (nanos <= (totals.get(key) ?? 0)) return false;
    totals.set(key, nanos);
    return true;
  }

  private async sync(notify = true): Promise<void> {
    // Campaign days follow their time zones, so today is yesterday or tomorrow for some of them.
    const utcDay = Math.floor(Date.now() / 86_400_000);
    const days = [utcDay - 1, utcDay, utcDay + 1];
    try {
      const [lifetime, events, ...daily] = await Promise.all([
        this.redis.hgetall(lifetimeKey),
        this.redis.get(eventCountKey),
        ...days.map((day) => this.redis.hgetall(dailyKey(day))),
      ]);
      const changed: string[] = [];
      for (const [campaign, nanos] of Object.entries(lifetime as Record<string, string>)) {
        let moved = this.raise(this.state.lifetimeNanos, campaign, Number(nanos));
        days.forEach((day, i) => {
          const spent = (daily[i] as Record<string, string>)[campaign];
          if (spent !== undefined && this.raise(this.state.dailyNanos, dailySpendKey(campaign, day), Number(spent))) moved = true;
        });
        if (moved) changed.push(campaign);
      }
      this.events = Math.max(this.events, Number(events ?? 0));
      if (notify && changed.length > 0) this.options.onSpendChange(changed);
    } catch (error) {
      this.options.onCommandError?.('sync');
      // Budgets keep the last mirrored totals; the next sync catches up.
      this.options.log.warn('redis spend sync failed', { error: (error as Error).message });
    }
  }
}
