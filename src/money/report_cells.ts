// Report cells (docs/reports.md): counters per (campaign, ad, advertiser, placement, time zone,
// local hour). Billing counters are added in the step that charges (LedgerMemory.apply locally, the
// Redis record script in fleet mode), so a report can never disagree with what was billed; decision
// counters (auctions entered and won, clearing prices, served value) come from the decision path
// (decision_counters.ts). Hours are numbered like localDay's days: hours since 1970-01-01T00:00 of
// the local wall clock, so a campaign's day is floor(hour / 24) and a DST fall-back hour is one cell.
import type { Nanos } from './amounts';
import { localDay } from './local_day';

/** Every counter of a cell, in the order a cell's array holds them; the names are also the Redis fields'. */
export const counterNames = [
  'impressions',
  'clicks',
  'conversions',
  'spendNanos',
  /** The full price of billable events, counted in the hour their ad was served (not charged). */
  'billedValueNanos',
  'entered',
  // Won and clearing-price sums per bid type, in BidType order (cpc, cpm, cpa).
  'wonCpc',
  'wonCpm',
  'wonCpa',
  'clearingCpcMicros',
  'clearingCpmMicros',
  'clearingCpaMicros',
  /** The charge each winner's billable event would bring at its frozen price, in the hour it was served. */
  'servedValueNanos',
] as const;

export type CounterName = (typeof counterNames)[number];
export const counterIndex = Object.fromEntries(counterNames.map((name, i) => [name, i])) as Record<CounterName, number>;
export const wonCounter = [counterIndex.wonCpc, counterIndex.wonCpm, counterIndex.wonCpa] as const;
export const clearingCounter = [counterIndex.clearingCpcMicros, counterIndex.clearingCpmMicros, counterIndex.clearingCpaMicros] as const;

export interface CellKey {
  campaignId: string;
  adId: string;
  advertiserId: string;
  placement: string;
  timeZone: string;
  hour: number;
}

/** What a ledger entry carries for the report, filled in at charge time. */
export interface ReportFields {
  advertiserId: string;
  placement: string;
  timeZone: string;
  /** The local hour of the event. */
  hour: number;
  /** The local hour its ad was served (the token's issue time). */
  servedHour: number;
  /** The price when this is the bid type's billable event (before any budget cap), else 0. */
  billedValueNanos: Nanos;
}

// Ids never hold a NUL (catalog ids are printable), so it separates the key's parts.
const separator = '\u0000';

export function cellKeyOf(key: CellKey): string {
  return [key.campaignId, key.adId, key.advertiserId, key.placement, key.timeZone, key.hour].join(separator);
}

export function parseCellKey(text: string): CellKey {
  const [campaignId, adId, advertiserId, placement, timeZone, hour] = text.split(separator) as [string, string, string, string, string, string];
  return { campaignId, adId, advertiserId, placement, timeZone, hour: Number(hour) };
}

/** The local hour of `timeMs` in `timeZone`, exactly as localDay picks the local day. */
export function localHour(timeMs: number, timeZone = 'UTC'): number {
  const { day, msIntoDay } = localDay(timeMs, timeZone);
  return day * 24 + Math.floor(msIntoDay / 3_600_000);
}

export type Counters = number[];

/** A bounded map of cells: cells of hours older than the retention are dropped whole. */
export class ReportCells {
  readonly cells = new Map<string, Counters>();
  /** Cell keys by local hour, so old hours are dropped without scanning every cell. */
  private readonly keysByHour = new Map<number, string[]>();

  constructor(private readonly retentionHours: number) {}

  add(key: string, hour: number, counter: number, amount: number): void {
    this.counters(key, hour)[counter]! += amount;
  }

  counters(key: string, hour: number): Counters {
    let counters = this.cells.get(key);
    if (!counters) {
      counters = new Array<number>(counterNames.length).fill(0);
      this.cells.set(key, counters);
      const keys = this.keysByHour.get(hour);
      if (keys) keys.push(key);
      else this.keysByHour.set(hour, [key]);
    }
    return counters;
  }

  /** Adds one accepted event's billing counters; entries written before reports existed carry none. */
  addBilling(campaignId: string, adId: string, type: 'impression' | 'click' | 'conversion', chargeNanos: Nanos, report: ReportFields | undefined): void {
    if (!report) return;
    const { advertiserId, placement, timeZone } = report;
    const counters = this.counters(cellKeyOf({ campaignId, adId, advertiserId, placement, timeZone, hour: report.hour }), report.hour);
    counters[type === 'impression' ? counterIndex.impressions : type === 'click' ? counterIndex.clicks : counterIndex.conversions]! += 1;
    counters[counterIndex.spendNanos]! += chargeNanos;
    if (report.billedValueNanos > 0) {
      const served = cellKeyOf({ campaignId, adId, advertiserId, placement, timeZone, hour: report.servedHour });
      this.add(served, report.servedHour, counterIndex.billedValueNanos, report.billedValueNanos);
    }
  }

  /** Every cell with its hour, its counters copied (a snapshot's capture). */
  entries(): Array<[string, number, Counters]> {
    const entries: Array<[string, number, Counters]> = [];
    for (const [hour, keys] of this.keysByHour) for (const key of keys) entries.push([key, hour, this.cells.get(key)!.slice()]);
    return entries;
  }

  /** Puts back a cell read from a snapshot or a flush file. */
  restore(key: string, hour: number, counters: Counters): void {
    const cell = this.counters(key, hour);
    counters.forEach((amount, i) => (cell[i]! += amount));
  }

  /** Drops the cells of local hours before `nowMs` minus the retention (a zone may be up to 14 h ahead of UTC). */
  forgetBefore(nowMs: number): void {
    const oldestKept = Math.floor(nowMs / 3_600_000) - this.retentionHours - 14;
    for (const [hour, keys] of this.keysByHour) {
      if (hour >= oldestKept) continue;
      for (const key of keys) this.cells.delete(key);
      this.keysByHour.delete(hour);
    }
  }

  /** The cells whose local day lies in [fromDay, toDay]. */
  *between(fromDay: number, toDay: number): Generator<[string, Counters]> {
    for (const [hour, keys] of this.keysByHour) {
      const day = Math.floor(hour / 24);
      if (day < fromDay || day > toDay) continue;
      for (const key of keys) yield [key, this.cells.get(key)!];
    }
  }
}
