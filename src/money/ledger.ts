// The durable spend ledger: an append-only log of accepted billable events in the data directory,
// written with group commit (one fsync covers every event accepted meanwhile) and replayed at start.
// An event is acknowledged only after its fsync, so kill -9 loses no acknowledged event; replay
// rebuilds the same state, so nothing is counted twice.
//
// Amounts are integer nanos (1e-9 of the currency): a CPM impression costs price_micros / 1000
// micros = price_micros nanos exactly, so no rounding is ever needed.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, truncateSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export type Nanos = number;

export interface LedgerEntry {
  /** Event id (idempotency key). */
  id: string;
  /** The event token's signature part: identifies the served ad instance. */
  serve: string;
  type: 'impression' | 'click' | 'conversion';
  campaignId: string;
  adId: string;
  chargeNanos: Nanos;
  /** UTC day (days since epoch) the charge counts against. */
  day: number;
  timeMs: number;
  /** The served request's user ('' when anonymous); impressions feed frequency caps. */
  user: string;
}

export interface LedgerState {
  eventIds: Set<string>;
  /** Time (ms) of each event type already recorded, per served ad instance. */
  serves: Map<string, Map<LedgerEntry['type'], number>>;
  lifetimeNanos: Map<string, Nanos>;
  /** Key: `${campaignId}@${day}`. */
  dailyNanos: Map<string, Nanos>;
  /** Impression times (ms) per user, then per campaign, ascending; pruned by FrequencyCaps. */
  impressions: Map<string, Map<string, number[]>>;
}

export function emptyState(): LedgerState {
  return { eventIds: new Set(), serves: new Map(), lifetimeNanos: new Map(), dailyNanos: new Map(), impressions: new Map() };
}

export function applyEntry(state: LedgerState, entry: LedgerEntry): void {
  state.eventIds.add(entry.id);
  let types = state.serves.get(entry.serve);
  if (!types) state.serves.set(entry.serve, (types = new Map()));
  types.set(entry.type, entry.timeMs);
  if (entry.type === 'impression' && entry.user) {
    let campaigns = state.impressions.get(entry.user);
    if (!campaigns) state.impressions.set(entry.user, (campaigns = new Map()));
    const times = campaigns.get(entry.campaignId);
    if (times) times.push(entry.timeMs);
    else campaigns.set(entry.campaignId, [entry.timeMs]);
  }
  if (entry.chargeNanos > 0) {
    state.lifetimeNanos.set(entry.campaignId, (state.lifetimeNanos.get(entry.campaignId) ?? 0) + entry.chargeNanos);
    const key = `${entry.campaignId}@${entry.day}`;
    state.dailyNanos.set(key, (state.dailyNanos.get(key) ?? 0) + entry.chargeNanos);
  }
}

export class Ledger {
  readonly state: LedgerState;
  private pending: Array<{ line: string; done: (error?: Error) => void }> = [];
  private flushing: Promise<void> | undefined;
  /** Set when a write or fsync failed: memory may now be ahead of disk, so no more events are taken. */
  failure: Error | undefined;

  private constructor(
    private readonly file: FileHandle,
    state: LedgerState,
    /** Entries replayed at open (a torn last line from a crash is dropped). */
    readonly recovered: number,
  ) {
    this.state = state;
  }

  static async open(dataDir: string): Promise<Ledger> {
    mkdirSync(dataDir, { recursive: true });
    const logPath = path.join(dataDir, 'spend.log');
    const state = emptyState();
    let recovered = 0;
    if (existsSync(logPath)) {
      const text = readFileSync(logPath, 'utf8');
      const totalBytes = Buffer.byteLength(text);
      let validBytes = 0;
      for (const line of text.split('\n')) {
        // Only newline-terminated lines count: a crash can leave a torn last line, never acknowledged.
        if (validBytes + Buffer.byteLength(line) + 1 > totalBytes) break;
        let entry: LedgerEntry;
        try {
          entry = JSON.parse(line) as LedgerEntry;
        } catch {
          break;
        }
        applyEntry(state, entry);
        recovered++;
        validBytes += Buffer.byteLength(line) + 1;
      }
      // Cut the torn tail, or the next append would bury it mid-file and stop every later replay.
      if (validBytes < totalBytes) truncateSync(logPath, validBytes);
    } else {
      closeSync(openSync(logPath, 'a'));
    }
    return new Ledger(await open(logPath, 'a'), state, recovered);
  }

  /** Applies the entry now (so a concurrent duplicate is refused) and resolves once it is on disk. */
  append(entry: LedgerEntry): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    applyEntry(this.state, entry);
    return new Promise((resolve, reject) => {
      this.pending.push({ line: `${JSON.stringify(entry)}\n`, done: (error) => (error ? reject(error) : resolve()) });
      if (!this.flushing) this.flushing = this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.file.write(batch.map((item) => item.line).join(''));
        await this.file.datasync();
        for (const item of batch) item.done();
      } catch (error) {
        this.failure = error as Error;
        for (const item of [...batch, ...this.pending]) item.done(this.failure);
        this.pending = [];
      }
    }
    this.flushing = undefined;
  }

  async close(): Promise<void> {
    await this.flushing;
    await this.file.close();
  }
}
