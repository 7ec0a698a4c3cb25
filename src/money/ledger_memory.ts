// What the local ledger keeps in memory: spend totals (lifetime forever, daily only for days a
// budget or report can still ask about), the event ids and served-ad records that can still decide
// an event, and impression history for frequency caps. Everything but the lifetime totals expires,
// so memory is bounded by the event rate times the retention, not by the ledger's age.
//
// Ids and served-ad records live in time-bucketed generations: a lookup checks each live generation
// (about 17), and expiry drops whole generations, so forgetting costs O(what is forgotten). Impression
// history is the per-user map FrequencyCaps reads, with a parallel log of batches saying what to
// prune from it and when. Expiry follows the newest event time seen, never the wall clock, so
// replaying the same entries forgets the same things.
import type { Nanos } from './amounts';
import type { LedgerEntry, LedgerState } from './ledger_state';
import { ReportCells } from './report_cells';
import { dailySpendKey } from './spend_totals';

export type EventType = LedgerEntry['type'];

export interface Generation {
  firstMs: number;
  /** The newest event time (ms) it holds: it may be dropped once that is older than the retention. */
  lastMs: number;
  eventIds: Set<string>;
  /** Served ad instances first seen in this generation: the time (ms) of each event type recorded. */
  serves: Map<string, Map<EventType, number>>;
}

/** Impressions recorded in a span of time, in the order they were applied (parallel arrays). */
export interface ImpressionBatch {
  firstMs: number;
  lastMs: number;
  users: string[];
  campaigns: string[];
  times: number[];
}

export interface RetentionOptions {
  /** How long an event id and a served-ad record can still decide an event (token lifetime plus attribution window). */
  eventRetentionMs: number;
  /** The longest frequency-cap window, or undefined while unknown (no catalog loaded): no impression is forgotten then. */
  impressionRetentionMs?: () => number | undefined;
  /** How long report cells are kept, in hours of event time. */
  reportRetentionHours: number;
}

/** A generation or batch spans at most this share of its retention, so at most 17 or so are live. */
const generationsPerRetention = 16;
/** Keeps each Set and Map far below V8's limit of 2^24 entries, whatever the event rate. */
const generationMaxEvents = 1_000_000;
/** Impression batches span this while no cap window is known. */
const defaultImpressionBatchSpanMs = 60_000;
const dayMs = 86_400_000;
/** Daily spend is kept for campaign days from the UTC day before yesterday on: yesterday in the zones furthest behind UTC. */
const keptDaysBeforeUtcToday = 2;

export class LedgerMemory {
  readonly state: LedgerState = { lifetimeNanos: new Map(), dailyNanos: new Map(), impressions: new Map() };
  /** Oldest first; the last one takes new ids. */
  generations: Generation[] = [];
  impressionBatches: ImpressionBatch[] = [];
  /** Events ever recorded, including those forgotten since. */
  eventsRecorded = 0;
  /** The newest event time (ms) applied: the clock expiry follows. */
  watermarkMs = 0;
  /** dailyNanos keys by their campaign day, so a past day is dropped without scanning the map. */
  private readonly dailyKeys = new Map<number, string[]>();
  private readonly generationSpanMs: number;
  /** Billing counters per report cell, added with each accepted event's charge. */
  readonly report: ReportCells;
  /** Unset while replaying at open: the catalog, and so the longest cap window, is not loaded yet. */
  impressionRetentionMs: (() => number | undefined) | undefined;

  constructor(
    private readonly eventRetentionMs: number,
    reportRetentionHours: number,
  ) {
    this.report = new ReportCells(reportRetentionHours);
    this.generationSpanMs = Math.max(1, Math.ceil(eventRetentionMs / generationsPerRetention));
  }

  knows(eventId: string): boolean {
    for (let g = this.generations.length - 1; g >= 0; g--) if (this.generations[g]!.eventIds.has(eventId)) return true;
    return false;
  }

  /** The event types already recorded for one served ad instance, with their times. */
  served(serve: string): Map<EventType, number> | undefined {
    for (let g = this.generations.length - 1; g >= 0; g--) {
      const types = this.generations[g]!.serves.get(serve);
      if (types) return types;
    }
    return undefined;
  }

  apply(entry: LedgerEntry): void {
    this.eventsRecorded++;
    if (entry.timeMs > this.watermarkMs) this.watermarkMs = entry.timeMs;
    const generation = this.generationFor(entry.timeMs);
    generation.eventIds.add(entry.id);
    if (entry.timeMs > generation.lastMs) generation.lastMs = entry.timeMs;
    const types = this.served(entry.serve);
    if (types) types.set(entry.type, entry.timeMs);
    else generation.serves.set(entry.serve, new Map([[entry.type, entry.timeMs]]));
    if (entry.type === 'impression' && entry.user) this.addImpression(entry.user, entry.campaignId, entry.timeMs);
    if (entry.chargeNanos > 0) {
      const { lifetimeNanos } = this.state;
      lifetimeNanos.set(entry.campaignId, (lifetimeNanos.get(entry.campaignId) ?? 0) + entry.chargeNanos);
      this.addDaily(dailySpendKey(entry.campaignId, entry.day), entry.day, entry.chargeNanos);
    }
    this.report.addBilling(entry.campaignId, entry.adId, entry.type, entry.chargeNanos, entry.report);
  }

  /** Adds to a campaign day's spend: a charge, or a total restored from a snapshot. */
  addDaily(key: string, day: number, nanos: Nanos): void {
    const { dailyNanos } = this.state;
    const spent = dailyNanos.get(key);
    if (spent === undefined) {
      const keys = this.dailyKeys.get(day);
      if (keys) keys.push(key);
      else {
        this.dailyKeys.set(day, [key]);
        this.forgetPastDays();
      }
    }
    dailyNanos.set(key, (spent ?? 0) + nanos);
  }

  /** Records an impression, new or restored from a snapshot (in the order they were applied). */
  addImpression(user: string, campaignId: string, timeMs: number): void {
    let campaigns = this.state.impressions.get(user);
    if (!campaigns) this.state.impressions.set(user, (campaigns = new Map()));
    const times = campaigns.get(campaignId);
    if (times) times.push(timeMs);
    else campaigns.set(campaignId, [timeMs]);
    let batch = this.impressionBatches.at(-1);
    const retentionMs = this.impressionRetentionMs?.();
    const spanMs = retentionMs === undefined ? defaultImpressionBatchSpanMs : Math.max(1, Math.ceil(retentionMs / generationsPerRetention));
    if (!batch || timeMs - batch.firstMs >= spanMs || batch.times.length >= generationMaxEvents) {
      batch = { firstMs: timeMs, lastMs: timeMs, users: [], campaigns: [], times: [] };
      this.impressionBatches.push(batch);
      if (retentionMs !== undefined) this.forgetImpressions(retentionMs);
    }
    batch.users.push(user);
    batch.campaigns.push(campaignId);
    batch.times.push(timeMs);
    if (timeMs > batch.lastMs) batch.lastMs = timeMs;
  }

  /** Every daily total kept, with its campaign day. */
  dailyEntries(): Array<[key: string, day: number, nanos: Nanos]> {
    const entries: Array<[string, number, Nanos]> = [];
    for (const [day, keys] of this.dailyKeys) for (const key of keys) entries.push([key, day, this.state.dailyNanos.get(key)!]);
    return entries;
  }

  private generationFor(timeMs: number): Generation {
    const current = this.generations.at(-1);
    if (current && timeMs - current.firstMs < this.generationSpanMs && current.eventIds.size < generationMaxEvents) return current;
    const next: Generation = { firstMs: timeMs, lastMs: timeMs, eventIds: new Set(), serves: new Map() };
    this.generations.push(next);
    this.forgetEvents();
    this.report.forgetBefore(this.watermarkMs);
    return next;
  }

  private forgetEvents(): void {
    const cutoff = this.watermarkMs - this.eventRetentionMs;
    while (this.generations.length > 1 && this.generations[0]!.lastMs < cutoff) this.generations.shift();
  }

  private forgetImpressions(retentionMs: number): void {
    const cutoff = this.watermarkMs - retentionMs;
    const { impressions } = this.state;
    while (this.impressionBatches.length > 1 && this.impressionBatches[0]!.lastMs < cutoff) {
      const batch = this.impressionBatches.shift()!;
      for (let i = 0; i < batch.users.length; i++) {
        const campaigns = impressions.get(batch.users[i]!);
        const times = campaigns?.get(batch.campaigns[i]!);
        if (!campaigns || !times) continue; // pruned already, by FrequencyCaps or an earlier record
        while (times.length > 0 && times[0]! <= cutoff) times.shift();
        if (times.length > 0) continue;
        campaigns.delete(batch.campaigns[i]!);
        if (campaigns.size === 0) impressions.delete(batch.users[i]!);
      }
    }
  }

  private forgetPastDays(): void {
    const oldestKept = Math.floor(this.watermarkMs / dayMs) - keptDaysBeforeUtcToday;
    for (const [day, keys] of this.dailyKeys) {
      if (day >= oldestKept) continue;
      for (const key of keys) this.state.dailyNanos.delete(key);
      this.dailyKeys.delete(day);
    }
  }
}
