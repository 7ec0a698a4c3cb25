import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { expect, it } from 'vitest';

import { Ledger, type LedgerEntry } from '../../src/money/ledger';

const entry = (id: string, chargeNanos: number): LedgerEntry => ({
  id, serve: `s-${id}`, type: 'click', campaignId: 'c1', adId: 'a1', chargeNanos, day: 20_000, timeMs: 1, user: 'u',
});

it('drops a torn tail left by a crash, so later appends still replay', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-ledger-unit-'));
  const first = await Ledger.open(dir);
  await first.append(entry('e1', 1_000));
  await first.append(entry('e2', 2_000));
  await first.close();
  appendFileSync(path.join(dir, 'spend.log'), '{"id":"e3","serve":"s-e3","ty'); // a write cut short by kill -9

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
