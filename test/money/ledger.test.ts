import { appendFileSync, copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { expect, it } from 'vitest';

import { addon } from '../../src/engine/addon';
import { Ledger, type LedgerEntry, type LedgerOptions, type SnapshotStats } from '../../src/money/ledger';
import { type Charge, LocalSpendStore } from '../../src/money/spend_store';

const entry = (id: string, chargeNanos: number, timeMs = 1): LedgerEntry => ({
  id,
  serve: `s-${id}`,
  type: 'click',
  campaignId: 'c1',
  adId: 'a1',
  chargeNanos,
  day: 20_000,
  timeMs,
  user: 'u',
});

const dayMs = 86_400_000;
const options: LedgerOptions = { snapshotEvents: 100_000, eventRetentionMs: 2 * dayMs, reportRetentionHours: 24 };

const newDir = (): string => mkdtempSync(path.join(tmpdir(), 'adserve-ledger-unit-'));

it('drops a torn tail left by a crash, so later appends still replay', async () => {
  const dir = newDir();
  const first = await Ledger.open(dir, options);
  await first.append(entry('e1', 1_000));
  await first.append(entry('e2', 2_000));
  await first.close();
  appendFileSync(path.join(dir, 'spend.1.log'), '{"id":"e3","serve":"s-e3","ty'); // a write cut short by kill -9

  const second = await Ledger.open(dir, options);
  expect(second.eventsRecorded).toBe(2);
  await second.append(entry('e4', 4_000));
  await second.close();

  const third = await Ledger.open(dir, options);
  expect(third.eventsRecorded).toBe(3);
  expect(['e1', 'e2', 'e3', 'e4'].map((id) => third.knows(id))).toEqual([true, true, false, true]);
  expect(third.state.lifetimeNanos.get('c1')).toBe(7_000);
  await third.close();
});

it('snapshots every N events, deletes the segments a snapshot covers and recovers the same state', async () => {
  const dir = newDir();
  const ledger = await Ledger.open(dir, { ...options, snapshotEvents: 4 });
  // Concurrent appends: group commit batches them, and snapshots happen between batches.
  await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.append(entry(`e${i}`, 1_000 * (i + 1)))));
  for (let i = 10; i < 23; i++) await ledger.append(entry(`e${i}`, 1_000 * (i + 1)));
  await ledger.close();
  const files = readdirSync(dir).sort();
  expect(files).toContain('snapshot.jsonl');
  // Only segments after the snapshot remain.
  expect(files.filter((name) => name.endsWith('.log')).length).toBeLessThanOrEqual(2);

  const reopened = await Ledger.open(dir, { ...options, snapshotEvents: 4 });
  expect(reopened.eventsRecorded).toBe(23);
  expect(Array.from({ length: 23 }, (_, i) => reopened.knows(`e${i}`)).every(Boolean)).toBe(true);
  expect(reopened.state.lifetimeNanos.get('c1')).toBe((1_000 * 23 * 24) / 2);
  expect(reopened.served('s-e7')?.get('click')).toBe(1);
  await reopened.close();
});

it('ignores a segment the snapshot already covers (a crash between snapshot and deletion)', async () => {
  const dir = newDir();
  const ledger = await Ledger.open(dir, { ...options, snapshotEvents: 1_000 });
  for (let i = 0; i < 3; i++) await ledger.append(entry(`e${i}`, 1_000));
  await ledger.close();
  const kept = path.join(tmpdir(), `adserve-segment-${process.pid}.log`);
  copyFileSync(path.join(dir, 'spend.1.log'), kept);

  const snapshotting = await Ledger.open(dir, { ...options, snapshotEvents: 1 });
  await snapshotting.append(entry('e3', 1_000)); // snapshot covering segment 1, which is deleted
  await snapshotting.close();
  copyFileSync(kept, path.join(dir, 'spend.1.log')); // as if the deletion had not happened

  const recovered = await Ledger.open(dir, options);
  expect(recovered.eventsRecorded).toBe(4);
  expect(recovered.state.lifetimeNanos.get('c1')).toBe(4_000);
  expect(readdirSync(dir)).not.toContain('spend.1.log');
  await recovered.close();
});

const budgets = { dailyNanos: Infinity, lifetimeNanos: Infinity };
const charge = (id: string, serve: string, type: LedgerEntry['type'], timeMs: number, user = ''): Charge => ({
  id,
  serve,
  type,
  campaignId: 'c1',
  adId: 'a1',
  day: Math.floor(timeMs / dayMs),
  timeMs,
  user,
  priceNanos: type === 'click' ? 1_000 : 0,
  budgets,
  report: {
    advertiserId: 'adv1',
    placement: 'search',
    timeZone: 'UTC',
    hour: Math.floor(timeMs / 3_600_000),
    servedHour: Math.floor(timeMs / 3_600_000),
    billedValueNanos: type === 'click' ? 1_000 : 0,
  },
});

it('forgets event ids and served ads past the retention, and still refuses a replay of a recent one', async () => {
  const ledger = await Ledger.open(newDir(), { ...options, eventRetentionMs: 10_000 });
  const store = new LocalSpendStore(ledger, 10_000);
  await store.record(charge('old', 'serve-old', 'impression', 0));
  await store.record(charge('recent', 'serve-recent', 'impression', 50_000));
  // Both are past the retention of the first: its id and its ad are forgotten, not refused.
  await expect(store.record(charge('old', 'serve-old', 'impression', 50_001))).resolves.toBe(0);
  await expect(store.record(charge('recent', 'serve-other', 'impression', 55_000))).rejects.toMatchObject({ code: 'duplicate_event' });
  await expect(store.record(charge('recent-click', 'serve-recent', 'click', 55_000))).resolves.toBe(1_000);
  await expect(store.record(charge('recent-click-2', 'serve-recent', 'click', 55_001))).rejects.toMatchObject({ code: 'duplicate_event' });
  // Counted once each, forgotten or not.
  expect(store.eventCount()).toBe(4);
  await ledger.close();
});

it('forgets daily spend of past days and impressions past the longest cap window, never lifetime spend', async () => {
  const ledger = await Ledger.open(newDir(), { ...options, impressionRetentionMs: () => 3_600_000 });
  const store = new LocalSpendStore(ledger, 10_000);
  const day = 20_000 * dayMs;
  await store.record(charge('i1', 's1', 'impression', day, 'early-user'));
  await store.record(charge('c1', 's1', 'click', day + 1));
  await store.record(charge('i2', 's2', 'impression', day + 2 * 3_600_000, 'late-user'));
  expect(ledger.state.impressions.has('early-user')).toBe(false);
  expect(ledger.state.impressions.get('late-user')?.get('c1')).toEqual([day + 2 * 3_600_000]);
  await store.record(charge('i3', 's3', 'impression', day + 3 * dayMs));
  await store.record(charge('c3', 's3', 'click', day + 3 * dayMs + 1));
  expect([...ledger.state.dailyNanos.keys()]).toEqual([`c1@${20_003}`]);
  expect(ledger.state.lifetimeNanos.get('c1')).toBe(2_000);
  await ledger.close();
});

/** Entries at one a millisecond from 0, so a 10 s retention expires most of them; every third charges. */
const timedEntry = (i: number): LedgerEntry => {
  const chargeNanos = i % 3 === 0 ? 1_000 + i : 0;
  // 2,002 report cells, so they too take several snapshot chunks, each changed again while it is written.
  const report = {
    advertiserId: 'adv1',
    placement: i % 2 ? 'search' : 'homepage',
    timeZone: 'UTC',
    hour: i % 1001,
    servedHour: i % 1001,
    billedValueNanos: chargeNanos,
  };
  return { ...entry(`t${i}`, chargeNanos, i), type: 'impression', user: `u${i % 500}`, report };
};
const chargeUpTo = (count: number): number => Array.from({ length: count }, (_, i) => timedEntry(i).chargeNanos).reduce((a, b) => a + b, 0);

it('writes a snapshot across many turns of the event loop, acknowledging events meanwhile into the next segment', async () => {
  const dir = newDir();
  const ledger = await Ledger.open(dir, { ...options, snapshotEvents: 60_000 });
  for (let from = 0; from < 60_000; from += 10_000) await Promise.all(Array.from({ length: 10_000 }, (_, i) => ledger.append(timedEntry(from + i))));
  // The last batch started a snapshot. Count, per turn of the event loop, the snapshot chunks
  // serialised (the only JSON strings this long) and the events acknowledged meanwhile.
  const stringify = JSON.stringify;
  let chunksThisTurn = 0;
  let mostChunksInOneTurn = 0;
  JSON.stringify = ((...args: Parameters<typeof stringify>) => {
    const text = stringify(...args);
    if (text.length > 2_000) chunksThisTurn++;
    return text;
  }) as typeof stringify;
  let turns = 0;
  let acknowledged = 0;
  let next = 60_000;
  try {
    while (!existsSync(path.join(dir, 'snapshot.jsonl'))) {
      void ledger.append(timedEntry(next++)).then(() => acknowledged++);
      await nextTurn();
      mostChunksInOneTurn = Math.max(mostChunksInOneTurn, chunksThisTurn);
      chunksThisTurn = 0;
      turns++;
    }
  } finally {
    JSON.stringify = stringify;
  }
  // Two at most: one after a file write completes and one in the same turn's setImmediate phase.
  expect(mostChunksInOneTurn).toBeGreaterThan(0);
  expect(mostChunksInOneTurn).toBeLessThanOrEqual(2);
  expect(turns).toBeGreaterThan(100);
  expect(acknowledged).toBeGreaterThan(0);
  await ledger.close();
  const secondSegment = readFileSync(path.join(dir, 'spend.2.log'), 'utf8');
  expect(secondSegment).toContain('"id":"t60000"');
  expect(secondSegment).not.toContain('"id":"t59999"');

  const reopened = await Ledger.open(dir, options);
  expect(reopened.eventsRecorded).toBe(next);
  expect(reopened.state.lifetimeNanos.get('c1')).toBe(chargeUpTo(next));
  expect(reopened.knows(`t${next - 1}`) && reopened.knows('t60000') && reopened.knows('t0')).toBe(true);
  // Report cells as billed: the snapshot's, as of its cut, plus the segment after it, each event once.
  const sorted = (cells: Array<[string, number, number[]]>): Array<[string, number, number[]]> => cells.sort(([a], [b]) => (a < b ? -1 : 1));
  expect(reopened.report.entries().length).toBe(2_002);
  expect(sorted(reopened.report.entries())).toEqual(sorted(ledger.report.entries()));
  await reopened.close();
});

it('times each snapshot turn in wall time and on the CPU: a turn the thread spent off a CPU is slow only in wall time', async () => {
  const dir = newDir();
  const stats: SnapshotStats[] = [];
  const ledger = await Ledger.open(dir, { ...options, snapshotEvents: 20_000, threadCpuNanos: () => addon.threadCpuNanos(), onSnapshot: (s) => stats.push(s) });
  // Inside the third chunk's turn the thread sleeps 8 ms (as when the scheduler runs another thread
  // meanwhile); inside the sixth it works 8 ms of CPU time.
  const stringify = JSON.stringify;
  let chunks = 0;
  JSON.stringify = ((...args: Parameters<typeof stringify>) => {
    const text = stringify(...args);
    if (text.length > 2_000 && ++chunks === 3) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 8);
    if (text.length > 2_000 && chunks === 6) {
      const from = addon.threadCpuNanos();
      while (addon.threadCpuNanos() - from < 8e6);
    }
    return text;
  }) as typeof stringify;
  try {
    for (let from = 0; from < 20_000; from += 10_000) await Promise.all(Array.from({ length: 10_000 }, (_, i) => ledger.append(timedEntry(from + i))));
    for (let waited = 0; stats.length === 0 && waited < 10_000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    JSON.stringify = stringify;
  }
  expect(chunks).toBeGreaterThan(6);
  const { turns } = stats[0]!;
  expect(turns.slowTurns).toBeGreaterThanOrEqual(2);
  expect(turns.longestMs).toBeGreaterThanOrEqual(8);
  expect(turns.slowTurnsOnCpu).toBe(1);
  expect(turns.longestOnCpuMs).toBeGreaterThanOrEqual(8);
  expect(turns.longestOnCpuMs).toBeLessThan(turns.longestMs + 0.5);
  await ledger.close();
});

it('recovers exactly, with expiry, from a kill during a snapshot and from one after it', async () => {
  const dir = newDir();
  const retention: LedgerOptions = { snapshotEvents: 30_000, eventRetentionMs: 10_000, impressionRetentionMs: () => 5_000, reportRetentionHours: 24 };
  const ledger = await Ledger.open(dir, retention);
  for (let from = 0; from < 60_000; from += 10_000) await Promise.all(Array.from({ length: 10_000 }, (_, i) => ledger.append(timedEntry(from + i))));
  let next = 60_000;
  const crashImage = `${dir}-crash`;
  // A kill -9 while the snapshot is being written: the directory as it is at that moment.
  while (!existsSync(path.join(dir, 'snapshot.jsonl.tmp'))) await ledger.append(timedEntry(next++));
  cpSync(dir, crashImage, { recursive: true });
  const appendedAtCrash = next;
  await Promise.all(Array.from({ length: 5_000 }, () => ledger.append(timedEntry(next++))));

  // Whatever reached the disk: a prefix of the appends, with its exact spend and nothing expired too early.
  const crashed = await Ledger.open(crashImage, retention);
  const recovered = crashed.eventsRecorded;
  expect(recovered).toBeGreaterThanOrEqual(appendedAtCrash - 1);
  expect(recovered).toBeLessThanOrEqual(appendedAtCrash);
  expect(crashed.state.lifetimeNanos.get('c1')).toBe(chargeUpTo(recovered));
  expect(crashed.knows(`t${recovered - 1}`) && crashed.knows(`t${recovered - 10_000}`)).toBe(true);
  expect(crashed.knows('t0')).toBe(false);
  await crashed.close();

  // A kill after everything was acknowledged (reopened without closing): the same decisions as the live ledger.
  // Its snapshot first finishes: one process owns the directory, and a reader racing the live writer's
  // rename and deletions could see the old snapshot and the segments already gone.
  await ledger.snapshotSettled();
  const reopened = await Ledger.open(dir, retention);
  expect(reopened.eventsRecorded).toBe(next);
  expect(reopened.state.lifetimeNanos.get('c1')).toBe(chargeUpTo(next));
  for (let i = 0; i < next; i += 7) expect([i, reopened.knows(`t${i}`)]).toEqual([i, ledger.knows(`t${i}`)]);
  for (let i = 0; i < next; i += 101) expect(reopened.served(`s-t${i}`)).toEqual(ledger.served(`s-t${i}`));
  // What frequency caps can still see; replay at open forgets no impression (no catalog is loaded yet).
  const capWindow = (impressions: Map<string, Map<string, number[]>>): string[] =>
    [...impressions]
      .flatMap(([user, campaigns]) => [...campaigns].map(([campaign, times]) => `${user}/${campaign}: ${times.filter((t) => t > next - 5_000).join()}`))
      .sort();
  expect(capWindow(reopened.state.impressions)).toEqual(capWindow(ledger.state.impressions));
  const kept = [...ledger.state.impressions.values()].reduce((sum, campaigns) => sum + [...campaigns.values()].reduce((n, times) => n + times.length, 0), 0);
  expect(kept).toBeLessThan(10_000); // of 65,000
  await reopened.close();
  await ledger.close();
});

it('reads the snapshot.json of earlier versions on upgrade and replaces it with its first snapshot', async () => {
  const dir = newDir();
  writeFileSync(
    path.join(dir, 'snapshot.json'),
    JSON.stringify({
      coversSegment: 1,
      eventIds: ['old-1', 'old-2'],
      serves: [
        ['s-old-1', [['click', 5]]],
        ['s-old-2', [['click', 6]]],
      ],
      lifetimeNanos: [['c1', 3_000]],
      dailyNanos: [['c1@20000', 3_000]],
      impressions: [['u', [['c1', [4]]]]],
    }),
  );
  writeFileSync(path.join(dir, 'spend.2.log'), `${JSON.stringify(entry('new-1', 1_000, 7))}\n`);
  const ledger = await Ledger.open(dir, { ...options, snapshotEvents: 1 });
  expect([ledger.eventsRecorded, ledger.knows('old-2'), ledger.served('s-old-1')?.get('click'), ledger.state.lifetimeNanos.get('c1')]).toEqual([
    3,
    true,
    5,
    4_000,
  ]);
  expect(ledger.state.dailyNanos.get('c1@20000')).toBe(4_000);
  expect(ledger.state.impressions.get('u')?.get('c1')).toEqual([4]);
  await ledger.append(entry('new-2', 1_000, 8));
  await ledger.close();
  expect(readdirSync(dir)).not.toContain('snapshot.json');
  const reopened = await Ledger.open(dir, options);
  expect([reopened.eventsRecorded, reopened.knows('old-1'), reopened.state.lifetimeNanos.get('c1')]).toEqual([4, true, 5_000]);
  await reopened.close();
});
