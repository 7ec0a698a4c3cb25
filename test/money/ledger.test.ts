import { appendFileSync, copyFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { expect, it } from 'vitest';

import { Ledger, type LedgerEntry } from '../../src/money/ledger';

const entry = (id: string, chargeNanos: number): LedgerEntry => ({
  id, serve: `s-${id}`, type: 'click', campaignId: 'c1', adId: 'a1', chargeNanos, day: 20_000, timeMs: 1, user: 'u',
});

const newDir = (): string => mkdtempSync(path.join(tmpdir(), 'adserve-ledger-unit-'));

it('drops a torn tail left by a crash, so later appends still replay', async () => {
  const dir = newDir();
  const first = await Ledger.open(dir);
  await first.append(entry('e1', 1_000));
  await first.append(entry('e2', 2_000));
  await first.close();
  appendFileSync(path.join(dir, 'spend.1.log'), '{"id":"e3","serve":"s-e3","ty'); // a write cut short by kill -9

  const second = await Ledger.open(dir);
  expect(second.recovered).toBe(2);
  await second.append(entry('e4', 4_000));
  await second.close();

  const third = await Ledger.open(dir);
  expect(third.recovered).toBe(3);
  expect([...third.state.eventIds]).toEqual(['e1', 'e2', 'e4']);
  expect(third.state.lifetimeNanos.get('c1')).toBe(7_000);
  await third.close();
});

it('snapshots every N events, deletes the segments a snapshot covers and recovers the same state', async () => {
  const dir = newDir();
  const ledger = await Ledger.open(dir, { snapshotEvents: 4 });
  // Concurrent appends: group commit batches them, and snapshots happen between batches.
  await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.append(entry(`e${i}`, 1_000 * (i + 1)))));
  for (let i = 10; i < 23; i++) await ledger.append(entry(`e${i}`, 1_000 * (i + 1)));
  await ledger.close();
  const files = readdirSync(dir).sort();
  expect(files).toContain('snapshot.json');
  // Only segments after the snapshot remain.
  expect(files.filter((name) => name.endsWith('.log')).length).toBeLessThanOrEqual(2);

  const reopened = await Ledger.open(dir, { snapshotEvents: 4 });
  expect(reopened.recovered).toBe(23);
  expect(reopened.state.eventIds.size).toBe(23);
  expect(reopened.state.lifetimeNanos.get('c1')).toBe((1_000 * 23 * 24) / 2);
  expect(reopened.state.serves.get('s-e7')?.get('click')).toBe(1);
  await reopened.close();
});

it('ignores a segment the snapshot already covers (a crash between snapshot and deletion)', async () => {
  const dir = newDir();
  const ledger = await Ledger.open(dir, { snapshotEvents: 1_000 });
  for (let i = 0; i < 3; i++) await ledger.append(entry(`e${i}`, 1_000));
  await ledger.close();
  const kept = path.join(tmpdir(), `adserve-segment-${process.pid}.log`);
  copyFileSync(path.join(dir, 'spend.1.log'), kept);

  const snapshotting = await Ledger.open(dir, { snapshotEvents: 1 });
  await snapshotting.append(entry('e3', 1_000)); // snapshot covering segment 1, which is deleted
  await snapshotting.close();
  copyFileSync(kept, path.join(dir, 'spend.1.log')); // as if the deletion had not happened

  const recovered = await Ledger.open(dir);
  expect(recovered.state.eventIds.size).toBe(4);
  expect(recovered.state.lifetimeNanos.get('c1')).toBe(4_000);
  expect(readdirSync(dir)).not.toContain('spend.1.log');
  await recovered.close();
});
