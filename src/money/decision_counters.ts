// The decision path's report counters (docs/reports.md): auctions entered and won, clearing prices
// and the value served, per report cell. They are not billing, so they are counted in memory on
// each replica and persisted every `flushMs`: locally into <dataDir>/report-decisions.json (a kill -9
// loses at most the last interval), in fleet mode added to the shared Redis cells with HINCRBY.
//
// Entering the auction is counted per candidate, hundreds per request, so it goes into a typed array
// per catalog and placement, indexed by ad, and is folded into cells once per UTC quarter hour: every
// time zone's hour (and DST change) starts on a quarter hour, so a quarter lies within one local hour.
//
// A flush touches every ad that entered an auction and, locally, every cell kept: a catalog's worth
// of work, so it is done a slice per turn of the event loop (20K ads over six placements took 80 ms
// in one go, stalling every request behind it).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';

import type { Catalog } from '../catalog/catalog';
import { grownTo } from '../catalog/growing_columns';
import { replaceDurably } from '../durable_file';
import type { Logger } from '../log';
import { BidType } from '../protocol/schema';
import { localDay } from './local_day';
import { cellKeyOf, clearingCounter, counterIndex, type Counters, ReportCells, wonCounter } from './report_cells';

const quarterMs = 900_000;
const fileName = 'report-decisions.json';
/** Ads folded, or cells written, per turn of the event loop during a flush: a millisecond or two each. */
const foldSlice = 500;
const writeSlice = 1_000;

/** One catalog and placement's entries of a quarter, closed for folding; `next` counts the ads folded so far. */
interface ClosedEntries {
  catalog: Catalog;
  placement: string;
  counts: Uint32Array;
  touched: number[];
  startMs: number;
  next: number;
}

/** Where flushed counters go: a durable file of the cumulative cells, or the shared Redis cells. */
export type DecisionSink = { kind: 'file'; dir: string } | { kind: 'redis'; add(cells: Array<[string, Counters]>): Promise<void> };

export class DecisionCounters {
  /** Local sink: every cell within the retention. Redis sink: only what is not flushed yet. */
  private cells: ReportCells;
  private quarter = -1;
  private readonly entered = new Map<Catalog, Map<string, { counts: Uint32Array; touched: number[] }>>();
  /** Entries closed by a flush and not yet folded into cells (oldest first). */
  private readonly closed: ClosedEntries[] = [];
  /**
   * Each ad's cell key per catalog and placement, with the zone and hour it was made for: an ad
   * enters auctions every flush and wins some, and its key only changes with the hour or its
   * campaign's zone.
   */
  private readonly cellKeys = new WeakMap<Catalog, Map<string, { keys: string[]; zones: string[]; hours: Float64Array }>>();
  /** Local minus UTC time (ms) per zone, within the current quarter. */
  private readonly offsets = new Map<string, number>();
  /** Whether anything was counted since the last flush began (an idle replica rewrites nothing). */
  private dirty = false;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: DecisionSink,
    private readonly retentionHours: number,
    private readonly timeZoneOf: (campaignId: string) => string,
    private readonly log: Logger,
  ) {
    this.cells = new ReportCells(retentionHours);
    if (sink.kind === 'file' && existsSync(path.join(sink.dir, fileName))) {
      const saved = JSON.parse(readFileSync(path.join(sink.dir, fileName), 'utf8')) as { cells: Array<[string, number, Counters]> };
      for (const [key, hour, counters] of saved.cells) this.cells.restore(key, hour, counters);
      // The first flush rewrites the file without the cells that expired meanwhile.
      this.dirty = true;
    }
  }

  /** Flushes every `flushMs`; the timer does not keep the process alive. */
  start(flushMs: number): void {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  /** Counts the `count` candidates of one auction (ads indexed in `catalog`). */
  enter(catalog: Catalog, placement: string, ads: Int32Array, count: number, nowMs: number): void {
    this.turnQuarter(nowMs);
    this.dirty = true;
    let byPlacement = this.entered.get(catalog);
    if (!byPlacement) this.entered.set(catalog, (byPlacement = new Map()));
    let entered = byPlacement.get(placement);
    if (!entered) byPlacement.set(placement, (entered = { counts: new Uint32Array(catalog.size), touched: [] }));
    // Ads added at run time grow the catalog in place: the counts must reach its newest rows.
    if (entered.counts.length < catalog.size) entered.counts = grownTo(entered.counts, catalog.size);
    const { counts, touched } = entered;
    for (let i = 0; i < count; i++) {
      const ad = ads[i]!;
      if (counts[ad]++ === 0) touched.push(ad);
    }
  }

  /** Counts one winner served at `issuedMs` (its token's issue time) at its clearing price. */
  won(catalog: Catalog, placement: string, ad: number, bidType: number, priceMicros: number, issuedMs: number): void {
    this.turnQuarter(issuedMs);
    this.dirty = true;
    const campaignId = catalog.campaignId[ad]!;
    const timeZone = this.timeZoneOf(campaignId);
    const hour = this.hourOf(timeZone, issuedMs);
    const counters = this.cells.counters(this.cellKeyOfAd(catalog, placement, ad, campaignId, timeZone, hour), hour);
    counters[wonCounter[bidType]!]! += 1;
    counters[clearingCounter[bidType]!]! += priceMicros;
    // What record_event would charge for this ad's billable event: CPM prices are per thousand.
    counters[counterIndex.servedValueNanos]! += bidType === BidType.Cpm ? priceMicros : priceMicros * 1000;
  }

  /**
   * The cells whose local day lies in [fromDay, toDay] that a report must add to the spend store's:
   * locally all of them; in fleet mode, after a flush into the shared cells, only what that flush
   * could not write.
   */
  async reportCells(fromDay: number, toDay: number): Promise<Array<[string, Counters]>> {
    if (this.sink.kind === 'redis') await this.flush();
    else this.fold();
    return Array.from(this.cells.between(fromDay, toDay), ([key, counters]) => [key, counters.slice()]);
  }

  /** Persists the counters; concurrent calls share one flush. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private async write(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    this.closeEntered();
    while (!this.foldClosed(foldSlice)) await nextTurn();
    const { sink } = this;
    try {
      if (sink.kind === 'file') {
        this.cells.forgetBefore(Date.now());
        await this.writeFile(sink.dir);
      } else {
        const pending = this.cells;
        this.cells = new ReportCells(this.retentionHours);
        try {
          await sink.add([...pending.cells]);
        } catch (error) {
          // Kept for the next flush, so a Redis outage delays the counts but loses none.
          for (const [key, hour, counters] of pending.entries()) this.cells.restore(key, hour, counters);
          throw error;
        }
      }
    } catch (error) {
      this.dirty = true;
      this.log.warn('report decision counters not flushed', { error: (error as Error).message });
    }
  }

  /** Every cell as of now, written a slice per turn (the same JSON as one stringify of them all). */
  private async writeFile(dir: string): Promise<void> {
    const capture = this.cells.freeze();
    try {
      await replaceDurably(dir, fileName, async (file) => {
        let separator = '';
        await file.write('{"cells":[');
        for (const { hour, keys, count } of capture.hours) {
          for (let from = 0; from < count; from += writeSlice) {
            const slice = keys.slice(from, Math.min(count, from + writeSlice)).map((key) => [key, hour, capture.cells.frozenCounters(key)]);
            await file.write(separator + JSON.stringify(slice).slice(1, -1));
            separator = ',';
          }
        }
        await file.write(']}');
      });
    } finally {
      capture.cells.thaw();
    }
  }

  private turnQuarter(nowMs: number): void {
    const quarter = Math.floor(nowMs / quarterMs);
    if (quarter === this.quarter) return;
    this.fold();
    this.quarter = quarter;
    this.offsets.clear();
  }

  private hourOf(timeZone: string, timeMs: number): number {
    let offset = this.offsets.get(timeZone);
    if (offset === undefined) {
      const { day, msIntoDay } = localDay(timeMs, timeZone);
      offset = day * 86_400_000 + msIntoDay - timeMs;
      this.offsets.set(timeZone, offset);
    }
    return Math.floor((timeMs + offset) / 3_600_000);
  }

  /** Closes the current quarter's entries for folding; entries counted from now on start afresh. */
  private closeEntered(): void {
    const startMs = this.quarter * quarterMs;
    for (const [catalog, byPlacement] of this.entered) {
      for (const [placement, { counts, touched }] of byPlacement) this.closed.push({ catalog, placement, counts, touched, startMs, next: 0 });
    }
    this.entered.clear();
  }

  /** Folds up to `budget` closed ads into cells; whether none is left. */
  private foldClosed(budget: number): boolean {
    while (this.closed.length > 0 && budget > 0) {
      const entries = this.closed[0]!;
      const { catalog, placement, counts, touched, startMs } = entries;
      const end = Math.min(touched.length, entries.next + budget);
      budget -= end - entries.next;
      for (; entries.next < end; entries.next++) {
        const ad = touched[entries.next]!;
        const campaignId = catalog.campaignId[ad]!;
        const timeZone = this.timeZoneOf(campaignId);
        const hour = this.hourOf(timeZone, startMs);
        this.cells.add(this.cellKeyOfAd(catalog, placement, ad, campaignId, timeZone, hour), hour, counterIndex.entered, counts[ad]!);
      }
      if (entries.next === touched.length) this.closed.shift();
    }
    return this.closed.length === 0;
  }

  /** The cell key of an ad's (of `campaignId`) counters in `placement` for the local `hour` in `timeZone`, made once per ad and hour. */
  private cellKeyOfAd(catalog: Catalog, placement: string, ad: number, campaignId: string, timeZone: string, hour: number): string {
    const { keys, zones, hours } = this.keysOf(catalog, placement);
    if (hours[ad] !== hour || zones[ad] !== timeZone) {
      keys[ad] = cellKeyOf({ campaignId, adId: catalog.adId.at(ad)!, advertiserId: catalog.advertiserId[ad]!, placement, timeZone, hour });
      zones[ad] = timeZone;
      hours[ad] = hour;
    }
    return keys[ad]!;
  }

  private keysOf(catalog: Catalog, placement: string): { keys: string[]; zones: string[]; hours: Float64Array } {
    let byPlacement = this.cellKeys.get(catalog);
    if (!byPlacement) this.cellKeys.set(catalog, (byPlacement = new Map()));
    let cached = byPlacement.get(placement);
    if (!cached)
      byPlacement.set(
        placement,
        (cached = { keys: new Array<string>(catalog.size), zones: new Array<string>(catalog.size), hours: new Float64Array(catalog.size).fill(NaN) }),
      );
    return cached;
  }

  /** Moves every entry counted so far into cells, at once: before the quarter (and so the zones' offsets) changes, and for a report. */
  private fold(): void {
    this.closeEntered();
    this.foldClosed(Infinity);
  }
}
