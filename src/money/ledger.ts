// The durable spend ledger: an append-only log of accepted events in the data directory, written
// with group commit (one fsync covers every event accepted meanwhile) and replayed at start. An event
// is acknowledged only after its fsync, so kill -9 loses no acknowledged event; replay rebuilds the
// same state, so nothing is counted twice.
//
// The log is cut into numbered segments (spend.<n>.log). Every `snapshotEvents` events the state is
// captured at the cut after segment n, new events go on into segment n + 1, and the capture is
// written to snapshot.jsonl in the background (ledger_snapshot.ts); once it is durable, the segments
// it covers are deleted, so a restart reads one snapshot and the events after it. A crash at any step
// leaves either the old snapshot with all segments after it, or the new one: recovery never skips or
// repeats an event. What the ledger remembers expires (ledger_memory.ts), so its memory and its
// snapshots stay bounded however long it runs.
//
// Amounts are integer nanos (amounts.ts).
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, unlinkSync } from 'node:fs';
import { type FileHandle, open, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';

import { replaceDurably } from '../durable_file';
import { LedgerMemory, type RetentionOptions } from './ledger_memory';
import { captureSnapshot, readLegacySnapshot, readSnapshot, type SnapshotCapture, TurnMeter, type TurnTimes, writeSnapshot } from './ledger_snapshot';
import type { LedgerEntry, LedgerState } from './ledger_state';
import type { ReportCells } from './report_cells';

// The ledger's public face: its callers import the entry and state types from here.
export { emptyState, type LedgerEntry, type LedgerState } from './ledger_state';

const segmentPattern = /^spend\.(\d+)\.log$/;
const segmentName = (segment: number): string => `spend.${segment}.log`;
const snapshotName = 'snapshot.jsonl';
/** The format of earlier versions, read until the first new snapshot replaces it. */
const legacySnapshotName = 'snapshot.json';

/** Applies a segment's complete lines; cuts a torn tail (a crash mid-write, never acknowledged). */
function replaySegment(file: string, memory: LedgerMemory): void {
  const text = readFileSync(file, 'utf8');
  const totalBytes = Buffer.byteLength(text);
  let validBytes = 0;
  for (const line of text.split('\n')) {
    // Only newline-terminated lines count.
    if (validBytes + Buffer.byteLength(line) + 1 > totalBytes) break;
    let entry: LedgerEntry;
    try {
      entry = JSON.parse(line) as LedgerEntry;
    } catch {
      break;
    }
    memory.apply(entry);
    validBytes += Buffer.byteLength(line) + 1;
  }
  // Cut the torn tail, or the next append would bury it mid-file and stop every later replay.
  if (validBytes < totalBytes) truncateSync(file, validBytes);
}

export interface SnapshotStats {
  coversSegment: number;
  /** Events recorded up to the cut, forgotten or not. */
  events: number;
  /** Event ids the snapshot holds. */
  ids: number;
  seconds: number;
  /** How long it held the event loop in each go: its capture, or the writing of one chunk. */
  turns: TurnTimes;
}

export interface LedgerOptions extends RetentionOptions {
  /** Events between snapshots. */
  snapshotEvents: number;
  /** Called once each snapshot is durable. */
  onSnapshot?: (stats: SnapshotStats) => void;
  /** The JS thread's CPU clock (ns), which lets the snapshot stats say how long a turn ran rather than only how long it took. */
  threadCpuNanos?: () => number;
  /** Called with the seconds each group commit took (its write and datasync), once it is durable. */
  onCommit?: (seconds: number) => void;
}

export class Ledger {
  private pending: Array<{ line: string; done: (error?: Error) => void }> = [];
  private flushing: Promise<void> | undefined;
  /** The snapshot being written, if any: at most one at a time. */
  private snapshotting: Promise<void> | undefined;
  private sinceSnapshot = 0;
  /** Set when a write or fsync failed: memory may be ahead of disk, or the disk is failing, so no more events are taken. */
  failure: Error | undefined;

  private constructor(
    private readonly dir: string,
    private file: FileHandle,
    private segment: number,
    private readonly memory: LedgerMemory,
    private readonly options: LedgerOptions,
  ) {}

  static async open(dataDir: string, options: LedgerOptions): Promise<Ledger> {
    mkdirSync(dataDir, { recursive: true });
    const memory = new LedgerMemory(options.eventRetentionMs, options.reportRetentionHours);
    const snapshotPath = path.join(dataDir, snapshotName);
    const legacyPath = path.join(dataDir, legacySnapshotName);
    let covered = 0;
    if (existsSync(snapshotPath)) covered = await readSnapshot(snapshotPath, memory);
    else if (existsSync(legacyPath)) covered = readLegacySnapshot(legacyPath, memory);
    const segments = readdirSync(dataDir)
      .map((name) => Number(segmentPattern.exec(name)?.[1] ?? -1))
      .filter((segment) => segment >= 0)
      .sort((a, b) => a - b);
    for (const segment of segments) {
      // Segments the snapshot covers were left by a crash before their deletion.
      if (segment <= covered) unlinkSync(path.join(dataDir, segmentName(segment)));
      else replaySegment(path.join(dataDir, segmentName(segment)), memory);
    }
    const current = Math.max(covered + 1, segments.at(-1) ?? 0);
    const file = await open(path.join(dataDir, segmentName(current)), 'a');
    memory.impressionRetentionMs = options.impressionRetentionMs;
    return new Ledger(dataDir, file, current, memory, options);
  }

  get state(): LedgerState {
    return this.memory.state;
  }

  /** Billing counters per report cell, as of the last event applied. */
  get report(): ReportCells {
    return this.memory.report;
  }

  /** Events ever recorded (at open: those recovered), including those whose ids have expired since. */
  get eventsRecorded(): number {
    return this.memory.eventsRecorded;
  }

  /** Whether an event id is remembered: ids expire once no token that could carry them is still valid. */
  knows(eventId: string): boolean {
    return this.memory.knows(eventId);
  }

  /** The event types recorded so far for one served ad instance, with their times (ms). */
  served(serve: string): ReadonlyMap<LedgerEntry['type'], number> | undefined {
    return this.memory.served(serve);
  }

  /** Applies the entry now (so a concurrent duplicate is refused) and resolves once it is on disk. */
  append(entry: LedgerEntry): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    this.memory.apply(entry);
    return new Promise((resolve, reject) => {
      this.pending.push({ line: `${JSON.stringify(entry)}\n`, done: (error) => (error ? reject(error) : resolve()) });
      if (!this.flushing) this.flushing = this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const started = performance.now();
      try {
        await this.file.write(batch.map((item) => item.line).join(''));
        await this.file.datasync();
        this.options.onCommit?.((performance.now() - started) / 1000);
        for (const item of batch) item.done();
        this.sinceSnapshot += batch.length;
        // Only here, with nothing pending, does the in-memory state equal what the segments hold.
        if (this.sinceSnapshot >= this.options.snapshotEvents && this.pending.length === 0 && !this.snapshotting) await this.startSnapshot();
      } catch (error) {
        this.failure = error as Error;
        for (const item of [...batch, ...this.pending]) item.done(this.failure);
        this.pending = [];
      }
    }
    this.flushing = undefined;
  }

  private async startSnapshot(): Promise<void> {
    const covers = this.segment;
    const started = performance.now();
    const meter = new TurnMeter(this.options.threadCpuNanos);
    meter.begin();
    // Captured before any await: events accepted from here on go to the next segment.
    const capture = captureSnapshot(this.memory, covers);
    meter.end();
    this.sinceSnapshot = 0;
    const previous = this.file;
    this.segment = covers + 1;
    this.file = await open(path.join(this.dir, segmentName(this.segment)), 'a');
    await previous.close();
    this.snapshotting = this.writeSnapshot(capture, started, meter)
      .catch((error: Error) => void (this.failure = error))
      .finally(() => {
        capture.report.cells.thaw();
        this.snapshotting = undefined;
      });
  }

  private async writeSnapshot(capture: SnapshotCapture, started: number, meter: TurnMeter): Promise<void> {
    await replaceDurably(this.dir, snapshotName, async (file) => {
      meter.begin();
      await writeSnapshot(file, capture, meter);
    });
    for (const name of await readdir(this.dir)) {
      const segment = Number(segmentPattern.exec(name)?.[1] ?? -1);
      if ((segment >= 0 && segment <= capture.coversSegment) || name === legacySnapshotName) await unlink(path.join(this.dir, name));
    }
    this.options.onSnapshot?.({
      coversSegment: capture.coversSegment,
      events: capture.eventsRecorded,
      ids: capture.generations.reduce((sum, { ids }) => sum + ids, 0),
      seconds: (performance.now() - started) / 1000,
      turns: meter.times,
    });
  }

  /** Resolves once the snapshot being written, if any, is durable and the segments it covers are deleted. */
  async snapshotSettled(): Promise<void> {
    await this.snapshotting;
  }

  async close(): Promise<void> {
    await this.flushing;
    await this.snapshotting;
    await this.file.close();
  }
}
