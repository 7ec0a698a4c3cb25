// The ledger's snapshot, snapshot.jsonl: one JSON record per line. It is captured in O(campaigns) at
// the cut between two segments and then written a chunk of entries at a time, yielding to the event
// loop between chunks, while new events go on into the next segment; it is read back as a stream, so
// no single string or parse holds it all.
//
// The capture is exact although the writer reads live structures: generations and impression
// batches only ever grow at their end and are dropped whole, so the first `count` entries of each, in
// insertion order, are exactly those of the segments the snapshot covers. A served-ad record may pick
// up an event type of a later segment meanwhile; replaying that segment sets the same time again.
import { createReadStream, readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { setImmediate as nextTurn } from 'node:timers/promises';

import type { Nanos } from './amounts';
import type { EventType, Generation, LedgerMemory } from './ledger_memory';
import type { Counters, ReportCapture } from './report_cells';
import { dayOfDailySpendKey } from './spend_totals';

type SnapshotRecord =
  | { kind: 'head'; coversSegment: number; eventsRecorded: number; watermarkMs: number }
  | { kind: 'lifetime'; entries: Array<[campaignId: string, nanos: Nanos]> }
  | { kind: 'daily'; entries: Array<[key: string, day: number, nanos: Nanos]> }
  | { kind: 'generation'; firstMs: number; lastMs: number }
  | { kind: 'ids'; ids: string[] }
  | { kind: 'serves'; serves: Array<[serve: string, types: Array<[EventType, number]>]> }
  | { kind: 'impressions'; users: string[]; campaigns: string[]; times: number[] }
  | { kind: 'report'; cells: Array<[key: string, hour: number, counters: Counters]> }
  | { kind: 'end' };

export interface SnapshotCapture {
  coversSegment: number;
  eventsRecorded: number;
  watermarkMs: number;
  lifetime: Array<[string, Nanos]>;
  daily: Array<[string, number, Nanos]>;
  generations: Array<{ generation: Generation; ids: number; serves: number }>;
  impressions: Array<{ users: string[]; campaigns: string[]; times: number[]; count: number }>;
  /** Frozen at the cut (ReportCells.freeze); thawed once written. */
  report: ReportCapture;
}

/** Entries per line: each line costs one short turn of the event loop (well under a millisecond). */
const chunkEntries = 500;
const writeBufferChars = 1 << 20;

/** The state as of now, when it holds exactly the segments up to `coversSegment`. */
export function captureSnapshot(memory: LedgerMemory, coversSegment: number): SnapshotCapture {
  return {
    coversSegment,
    eventsRecorded: memory.eventsRecorded,
    watermarkMs: memory.watermarkMs,
    lifetime: [...memory.state.lifetimeNanos],
    daily: memory.dailyEntries(),
    generations: memory.generations.map((generation) => ({ generation, ids: generation.eventIds.size, serves: generation.serves.size })),
    impressions: memory.impressionBatches.map((batch) => ({ ...batch, count: batch.times.length })),
    report: memory.report.freeze(),
  };
}

function* chunksOf<T>(values: Iterator<T>, count: number): Generator<T[]> {
  for (let left = count; left > 0;) {
    const chunk: T[] = [];
    for (; chunk.length < chunkEntries && left > 0; left--) chunk.push(values.next().value as T);
    yield chunk;
  }
}

/** A turn longer than this is counted: the bound a snapshot may hold the event loop for. */
const slowTurnMs = 5;

/** How long the snapshot's turns of the event loop took (its capture, and the writing of each chunk). */
export interface TurnTimes {
  longestMs: number;
  /** Turns of more than 5 ms wall time. */
  slowTurns: number;
  /**
   * The most CPU time the JS thread ran in one turn, and the turns that ran more than 5 ms: the
   * snapshot's own work (a collection inside the turn included), without the time the scheduler
   * gave other threads meanwhile. Undefined without a thread CPU clock.
   */
  longestOnCpuMs?: number;
  slowTurnsOnCpu?: number;
}

/** Times the turns of one snapshot, on the JS thread that writes it; `threadCpuNanos` is that thread's CPU clock. */
export class TurnMeter {
  private wallStarted = 0;
  private cpuStarted = 0;
  readonly times: TurnTimes;

  constructor(private readonly threadCpuNanos?: () => number) {
    this.times = threadCpuNanos ? { longestMs: 0, slowTurns: 0, longestOnCpuMs: 0, slowTurnsOnCpu: 0 } : { longestMs: 0, slowTurns: 0 };
  }

  begin(): void {
    this.wallStarted = performance.now();
    if (this.threadCpuNanos) this.cpuStarted = this.threadCpuNanos();
  }

  end(): void {
    const wallMs = performance.now() - this.wallStarted;
    const { times } = this;
    times.longestMs = Math.max(times.longestMs, wallMs);
    if (wallMs > slowTurnMs) times.slowTurns++;
    if (!this.threadCpuNanos) return;
    const onCpuMs = (this.threadCpuNanos() - this.cpuStarted) / 1e6;
    times.longestOnCpuMs = Math.max(times.longestOnCpuMs!, onCpuMs);
    if (onCpuMs > slowTurnMs) times.slowTurnsOnCpu!++;
  }
}

/** Writes the capture, timing each turn it takes with `meter` (begun by the caller). */
export async function writeSnapshot(file: FileHandle, capture: SnapshotCapture, meter: TurnMeter): Promise<void> {
  let buffered: string[] = [];
  let chars = 0;
  const put = async (record: SnapshotRecord): Promise<void> => {
    const line = `${JSON.stringify(record)}\n`;
    buffered.push(line);
    chars += line.length;
    if (chars < writeBufferChars) {
      meter.end();
      await nextTurn();
    } else {
      const text = buffered.join('');
      buffered = [];
      chars = 0;
      meter.end();
      await file.write(text);
    }
    meter.begin();
  };
  const { coversSegment, eventsRecorded, watermarkMs } = capture;
  await put({ kind: 'head', coversSegment, eventsRecorded, watermarkMs });
  for (const entries of chunksOf(capture.lifetime.values(), capture.lifetime.length)) await put({ kind: 'lifetime', entries });
  for (const entries of chunksOf(capture.daily.values(), capture.daily.length)) await put({ kind: 'daily', entries });
  for (const { generation, ids, serves } of capture.generations) {
    await put({ kind: 'generation', firstMs: generation.firstMs, lastMs: generation.lastMs });
    for (const chunk of chunksOf(generation.eventIds.values(), ids)) await put({ kind: 'ids', ids: chunk });
    for (const chunk of chunksOf(generation.serves.entries(), serves)) {
      await put({ kind: 'serves', serves: chunk.map(([serve, types]) => [serve, [...types]]) });
    }
  }
  for (const batch of capture.impressions) {
    for (let from = 0; from < batch.count; from += chunkEntries) {
      const to = Math.min(batch.count, from + chunkEntries);
      await put({ kind: 'impressions', users: batch.users.slice(from, to), campaigns: batch.campaigns.slice(from, to), times: batch.times.slice(from, to) });
    }
  }
  const { report } = capture;
  for (const { hour, keys, count } of report.hours) {
    for (const chunk of chunksOf(keys.values(), count)) await put({ kind: 'report', cells: chunk.map((key) => [key, hour, report.cells.frozenCounters(key)]) });
  }
  await put({ kind: 'end' });
  const rest = buffered.join('');
  meter.end();
  await file.write(rest);
}

/** Loads a snapshot into empty memory; returns the last segment it covers. */
export async function readSnapshot(file: string, memory: LedgerMemory): Promise<number> {
  let coversSegment: number | undefined;
  let complete = false;
  let generation: Generation | undefined;
  for await (const line of createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })) {
    const record = JSON.parse(line) as SnapshotRecord;
    switch (record.kind) {
      case 'head':
        ({ coversSegment } = record);
        memory.eventsRecorded = record.eventsRecorded;
        memory.watermarkMs = record.watermarkMs;
        break;
      case 'lifetime':
        for (const [campaignId, nanos] of record.entries) memory.state.lifetimeNanos.set(campaignId, nanos);
        break;
      case 'daily':
        for (const [key, day, nanos] of record.entries) memory.addDaily(key, day, nanos);
        break;
      case 'generation':
        generation = { firstMs: record.firstMs, lastMs: record.lastMs, eventIds: new Set(), serves: new Map() };
        memory.generations.push(generation);
        break;
      case 'ids':
        for (const id of record.ids) generation!.eventIds.add(id);
        break;
      case 'serves':
        for (const [serve, types] of record.serves) generation!.serves.set(serve, new Map(types));
        break;
      case 'impressions':
        for (let i = 0; i < record.times.length; i++) memory.addImpression(record.users[i]!, record.campaigns[i]!, record.times[i]!);
        break;
      case 'report':
        for (const [key, hour, counters] of record.cells) memory.report.restore(key, hour, counters);
        break;
      case 'end':
        complete = true;
    }
  }
  // The snapshot is renamed into place only once complete, so this is damage, not a crash.
  if (coversSegment === undefined || !complete) throw new Error(`${file} is incomplete`);
  return coversSegment;
}

/** The single-JSON snapshot.json of earlier versions, read once on upgrade so no spend is lost; returns the last segment it covers. */
export function readLegacySnapshot(file: string, memory: LedgerMemory): number {
  const legacy = JSON.parse(readFileSync(file, 'utf8')) as {
    coversSegment: number;
    eventIds: string[];
    serves: Array<[string, Array<[EventType, number]>]>;
    lifetimeNanos: Array<[string, Nanos]>;
    dailyNanos: Array<[string, Nanos]>;
    impressions: Array<[string, Array<[string, number[]]>]>;
  };
  // It kept no time per id; each id's event also timed its served ad, so the newest of those bounds them all.
  const lastMs = legacy.serves.reduce((newest, [, types]) => types.reduce((most, [, timeMs]) => Math.max(most, timeMs), newest), 0);
  memory.eventsRecorded = legacy.eventIds.length;
  memory.watermarkMs = lastMs;
  memory.generations.push({
    firstMs: lastMs,
    lastMs,
    eventIds: new Set(legacy.eventIds),
    serves: new Map(legacy.serves.map(([serve, types]) => [serve, new Map(types)])),
  });
  for (const [campaignId, nanos] of legacy.lifetimeNanos) memory.state.lifetimeNanos.set(campaignId, nanos);
  for (const [key, nanos] of legacy.dailyNanos) memory.addDaily(key, dayOfDailySpendKey(key), nanos);
  for (const [user, campaigns] of legacy.impressions)
    for (const [campaignId, times] of campaigns) for (const timeMs of times) memory.addImpression(user, campaignId, timeMs);
  return legacy.coversSegment;
}
