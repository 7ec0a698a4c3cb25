// The process-wide money owner across a model swap: real engines of the tiny model, swapped by the
// real ModelSwapper, with spend put straight into the ledger's state and time given explicitly.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CatalogChanges } from '../../src/catalog/catalog_changes';
import { defaults } from '../../src/config';
import { addon } from '../../src/engine/addon';
import { readModelDir } from '../../src/engine/model_dir';
import { ModelSwapper } from '../../src/pipeline/model_swap';
import { closeServing, openServing } from '../../src/engine/serving';
import { createMetrics } from '../../src/metrics';
import { signingKeyOf } from '../../src/money/event_token';
import { Ledger } from '../../src/money/ledger';
import { localDay } from '../../src/money/local_day';
import { Money } from '../../src/money/money';
import { PacingController } from '../../src/money/pacing';
import { LocalSpendStore } from '../../src/money/spend_store';
import { dailySpendKey } from '../../src/money/spend_totals';
import type { DecisionContext } from '../../src/pipeline/ad_decision';
import { DecisionScratch } from '../../src/pipeline/scratch';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { projectRoot } from '../../src/paths';
import { tinyModelDir } from '../setup/tiny_model';

const config = { ...defaults, indexKind: 'flat' as const };
const day = localDay(Date.UTC(2026, 0, 15)).day;
const at = (hour: number, minute: number): number => Date.UTC(2026, 0, 15, hour, minute);
let money: Money;
let context: DecisionContext;
let swapper: ModelSwapper;
let ledger: Ledger;

beforeAll(async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-money-'));
  ledger = await Ledger.open(dataDir, { snapshotEvents: 100_000, eventRetentionMs: 2 * 3_600_000, reportRetentionHours: 24 });
  money = new Money(new LocalSpendStore(ledger, 3_600_000));
  const changes = CatalogChanges.open(dataDir);
  const serving = await openServing(readModelDir(tinyModelDir), config, money, changes);
  context = {
    config,
    serving,
    signingKey: signingKeyOf(Buffer.from('money-test-key')),
    metrics: createMetrics(addon.buildInfo(), 'test'),
    clock: { now: () => at(6, 0), monotonic: () => 0 },
    random: () => 0.5,
    scratch: new DecisionScratch(),
  };
  swapper = new ModelSwapper(context, config, projectRoot, money, changes);
});

afterAll(() => {
  if (context.serving) closeServing(context.serving);
});

/** The participation pacing gives `campaignId` in the serving model's exclusions, read through its draws to 1e-9. */
function participationOf(campaignId: string): number {
  const pacer = context.serving!.pacer;
  if (!pacer.sittingOut(() => 1 - 1e-12).includes(campaignId)) return 1;
  let low = 0;
  let high = 1;
  while (high - low > 1e-9) {
    const mid = (low + high) / 2;
    if (pacer.sittingOut(() => mid).includes(campaignId)) high = mid;
    else low = mid;
  }
  return high;
}

/** Whether the serving engine retrieves any ad of the campaign for queries made of its ads' titles. */
async function retrieves(campaignId: string): Promise<boolean> {
  const { catalog, engine } = context.serving!;
  for (const ad of catalog.campaignAds.get(campaignId)!.slice(0, 8)) {
    const request = encodeAdRequest({ id: `retrieve-${ad}`, query: catalog.title.at(ad)!, slots: 10 });
    const result = await engine.score(request, 1000, new Uint32Array(0));
    if (result.adIndex.some((candidate) => catalog.campaignId[candidate] === campaignId)) return true;
  }
  return false;
}

describe('money across a model swap', () => {
  it('keeps each pacing controller: after the swap, participation is what one controller fed the whole morning gives', async () => {
    const campaign = context.serving!.catalog.campaigns.get('c000000')!;
    expect(campaign.pacing).toBe('even');
    const budgetMicros = campaign.daily_budget_micros!;
    // A little ahead of the even curve (a quarter of the day is due at 06:00): throttled, not pinned.
    const spentMicros = [0.26, 0.265, 0.268].map((share) => Math.round(share * budgetMicros));
    const times = [at(6, 0), at(6, 10), at(6, 20)];
    const reference = new PacingController('even');
    const expected = times.map((time, i) => reference.update(localDay(time).msIntoDay, spentMicros[i]!, budgetMicros));
    const tick = (i: number): void => {
      ledger.state.dailyNanos.set(dailySpendKey('c000000', day), spentMicros[i]! * 1000);
      money.tick(times[i]!);
    };
    tick(0);
    tick(1);
    expect(participationOf('c000000')).toBeCloseTo(expected[1]!, 8);
    const before = context.serving!;
    await swapper.swap(tinyModelDir);
    expect(context.serving).not.toBe(before);
    // Until the next tick the new model throttles exactly as the old one did.
    expect(participationOf('c000000')).toBeCloseTo(expected[1]!, 8);
    tick(2);
    // A controller started afresh at the swap would have lost the integral of the first 20 minutes.
    expect(expected[2]).toBeLessThan(new PacingController('even').update(localDay(times[2]!).msIntoDay, spentMicros[2]!, budgetMicros) - 0.01);
    expect(participationOf('c000000')).toBeCloseTo(expected[2]!, 8);
  });

  it('keeps a campaign whose daily budget ran out out of the engine swapped in, until its day turns', async () => {
    // Opening a model checks budgets at the wall clock's time, so this test spends today.
    const campaignId = 'c000001';
    const nowMs = Date.now();
    expect(await retrieves(campaignId)).toBe(true);
    const budgets = money.budgetsOf(campaignId);
    ledger.state.dailyNanos.set(dailySpendKey(campaignId, money.dayOf(campaignId, nowMs)), budgets.dailyNanos);
    money.spendChanged([campaignId], nowMs);
    expect(await retrieves(campaignId)).toBe(false);
    await swapper.swap(tinyModelDir);
    expect(money.spendOf(campaignId, nowMs)).toEqual({ lifetimeMicros: 0, todayMicros: budgets.dailyNanos / 1000, exhausted: true });
    expect(await retrieves(campaignId)).toBe(false);
    money.tick(nowMs + 86_400_000);
    expect(money.isExhausted(campaignId)).toBe(false);
    expect(await retrieves(campaignId)).toBe(true);
  });
});
