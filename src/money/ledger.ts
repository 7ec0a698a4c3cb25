// The durable spend ledger: an append-only log of accepted events in the data directory, written
// with group commit (one fsync covers every event accepted meanwhile) and replayed at start. An event
// is acknowledged only after its fsync, so kill -9 loses no acknowledged event; replay rebuilds the
// same state, so nothing is counted twice.
//
// The log is cut into numbered segments (spend.<n>.log). Every `snapshotEvents` events the state is
// written to snapshot.json (covering every segment up to n) and older segments are deleted, so a
// restart reads one snapshot and the events after it. A crash at any step leaves either the old
// snapshot with all segments after it, or the new one: recovery never skips or repeats an event.
//
// Amounts are integer nanos (1e-9 of the currency): a CPM impression costs price_micros / 1000
// micros = price_micros nanos exactly, so no rounding is ever needed.
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, unlinkSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

import { writeDurably } from '../durable_file';

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


const segmentPattern = /^spend\.(\d+)\.log$/;
const segmentName = (segment: number): string => `spend.${segment}.log`;

interface Snapshot {
  /** The state holds every event of segments up to this one. */
  coversSegment: number;
  eventIds: string[];
  serves: Array<[string, Array<[LedgerEntry['type'], number]>]>;
  lifetimeNanos: Array<[string, Nanos]>;
  dailyNanos: Array<[string, Nanos]>;
  impressions: Array<[string, Array<[string, number[]]>]>;
}

function snapshotOf(state: LedgerState, coversSegment: number): Snapshot {
  return {
    coversSegment,
    eventIds: [...state.eventIds],
    serves: Array.from(state.serves, ([serve, types]) => [serve, [...types]]),
    lifetimeNanos: [...state.lifetimeNanos],
    dailyNanos: [...state.dailyNanos],
    impressions: Array.from(state.impressions, ([user, campaigns]) => [user, [...campaigns]]),
  };
}

function stateOf(snapshot: Snapshot): LedgerState {
  return {
    eventIds: new Set(snapshot.eventIds),
    serves: new Map(snapshot.serves.map(([serve, types]) => [serve, new Map(types)])),
    lifetimeNanos: new Map(snapshot.lifetimeNanos),
    dailyNanos: new Map(snapshot.dailyNanos),
    impressions: new Map(snapshot.impressions.map(([user, campaigns]) => [user, new Map(campaigns)])),
  };
}

/** Applies a segment's complete lines; cuts a torn tail (a crash mid-write, never acknowledged). */
function replaySegment(file: string, state: LedgerState): number {
  const text = readFileSync(file, 'utf8');
  const totalBytes = Buffer.byteLength(text);
  let validBytes = 0;
  let replayed = 0;
  for (const line of text.split('\n')) {
    // Only newline-terminated lines count.
    if (validBytes + Buffer.byteLength(line) + 1 > totalBytes) break;
    let entry: LedgerEntry;
    try {
      entry = JSON.parse(line) as LedgerEntry;
    } catch {
      break;
    }
    applyEntry(state, entry);
    replayed++;
    validBytes += Buffer.byteLength(line) + 1;
  }
  // Cut the torn tail, or the next append would bury it mid-file and stop every later replay.
  if (validBytes < totalBytes) truncateSync(file, validBytes);
  return replayed;
}

export interface LedgerOptions {
  /** Events between snapshots. */
  snapshotEvents: number;
}

export class Ledger {
  private pending: Array<{ line: string; done: (error?: Error) => void }> = [];
  private flushing: Promise<void> | undefined;
  private sinceSnapshot = 0;
  /** Set when a write or fsync failed: memory may now be ahead of disk, so no more events are taken. */
  failure: Error | undefined;

  private constructor(
    private readonly dir: string,
    private file: FileHandle,
    private segment: number,
    readonly state: LedgerState,
    /** Events recovered at open: from the snapshot and the segments after it. */
    readonly recovered: number,
    private readonly options: LedgerOptions,
  ) {}

  static async open(dataDir: string, options: LedgerOptions = { snapshotEvents: 100_000 }): Promise<Ledger> {
    mkdirSync(dataDir, { recursive: true });
    const snapshotPath = path.join(dataDir, 'snapshot.json');
    const snapshot = existsSync(snapshotPath) ? (JSON.parse(readFileSync(snapshotPath, 'utf8')) as Snapshot) : undefined;
    const state = snapshot ? stateOf(snapshot) : emptyState();
    let recovered = state.eventIds.size;
    const covered = snapshot?.coversSegment ?? 0;
    const segments = readdirSync(dataDir)
      .map((name) => Number(segmentPattern.exec(name)?.[1] ?? -1))
      .filter((segment) => segment >= 0)
      .sort((a, b) => a - b);
    for (const segment of segments) {
      // Segments the snapshot covers were left by a crash before their deletion.
      if (segment <= covered) unlinkSync(path.join(dataDir, segmentName(segment)));
      else recovered += replaySegment(path.join(dataDir, segmentName(segment)), state);
    }
    const current = Math.max(covered + 1, segments.at(-1) ?? 0);
    const file = await open(path.join(dataDir, segmentName(current)), 'a');
    return new Ledger(dataDir, file, current, state, recovered, options);
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
        this.sinceSnapshot += batch.length;
        // Only here, with nothing pending, does the in-memory state equal what the segments hold.
        if (this.sinceSnapshot >= this.options.snapshotEvents && this.pending.length === 0) await this.snapshot();
      } catch (error) {
        this.failure = error as Error;
        for (const item of [...batch, ...this.pending]) item.done(this.failure);
        this.pending = [];
      }
    }
    this.flushing = undefined;
  }

  private async snapshot(): Promise<void> {
    const covers = this.segment;
    // Serialised before any await: events accepted from here on go to the next segment.
    const content = JSON.stringify(snapshotOf(this.state, covers));
    const previous = this.file;
    this.segment = covers + 1;
    this.file = await open(path.join(this.dir, segmentName(this.segment)), 'a');
    await previous.close();
    this.sinceSnapshot = 0;
    writeDurably(this.dir, 'snapshot.json', content);
    for (const name of readdirSync(this.dir)) {
      const segment = Number(segmentPattern.exec(name)?.[1] ?? -1);
      if (segment >= 0 && segment <= covers) unlinkSync(path.join(this.dir, name));
    }
  }

  async close(): Promise<void> {
    await this.flushing;
    await this.file.close();
  }
}
