// The exclusions stage with a fixed clock and random source: frequency caps from the user's
// impressions inside the cap window, pacing's participation draws from the random source given.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { catalogFromJson } from '../../src/catalog/catalog';
import { readCatalogFile } from '../../src/catalog/catalog_file';
import { campaignCodes } from '../../src/engine/engine';
import { readModelDir } from '../../src/engine/model_dir';
import { FrequencyCaps } from '../../src/money/frequency_caps';
import { Ledger } from '../../src/money/ledger';
import { localDay } from '../../src/money/local_day';
import { Pacer } from '../../src/money/pacing';
import { LocalSpendStore } from '../../src/money/spend_store';
import type { Clock } from '../../src/pipeline/clock';
import { type ExclusionSources, excludedCampaigns } from '../../src/pipeline/exclusions';
import { DecisionScratch } from '../../src/pipeline/scratch';
import { tinyModelDir } from '../setup/tiny_model';

const nowMs = Date.UTC(2026, 0, 15, 6); // 06:00 UTC: a quarter of an even day's budget is due
const fixedClock = (ms: number): Clock => ({ now: () => ms, monotonic: () => 0 });
const json = readCatalogFile(readModelDir(tinyModelDir).seedCatalog!.file);
const paced = json.campaigns[0]!;
const capped = json.campaigns[1]!;
Object.assign(paced, { pacing: 'even', daily_budget_micros: 1_000_000 });
delete paced.frequency_cap;
Object.assign(capped, { pacing: 'asap', frequency_cap: { impressions: 1, window_seconds: 3600 } });
const catalog = catalogFromJson(json);
const codes = campaignCodes(catalog);
let sources: ExclusionSources;

beforeAll(async () => {
  const ledger = await Ledger.open(mkdtempSync(path.join(tmpdir(), 'adserve-exclusions-')), {
    snapshotEvents: 100_000,
    eventRetentionMs: 86_400_000,
    reportRetentionHours: 24,
  });
  // The whole day's budget spent by 06:00: far ahead of the even curve, so pacing throttles it.
  ledger.state.dailyNanos.set(`${paced.id}@${localDay(nowMs).day}`, 1_000_000 * 1000);
  ledger.state.impressions.set('u-capped', new Map([[capped.id, [nowMs - 60_000]]]));
  const pacer = new Pacer(() => catalog, ledger.state);
  for (const campaign of catalog.campaignPacing.keys()) pacer.follow(campaign);
  pacer.tick(nowMs);
  sources = { frequency: new FrequencyCaps(catalog, new LocalSpendStore(ledger, 3_600_000)), pacer, campaignCode: codes };
});

describe('exclusions stage', () => {
  it('sits a throttled campaign out when the draw is at or above its participation, one draw per throttled campaign', async () => {
    const draws: number[] = [];
    const random = (value: number) => () => (draws.push(value), value);
    const out = await excludedCampaigns(sources, '', 100, fixedClock(nowMs), random(0.5), new DecisionScratch());
    expect(Array.from(out)).toEqual([codes.get(paced.id)]);
    // Participation sits at its 1 % floor: a draw under it takes part.
    expect(Array.from(await excludedCampaigns(sources, '', 100, fixedClock(nowMs), random(0.001), new DecisionScratch()))).toEqual([]);
    expect(draws).toEqual([0.5, 0.001]);
  });

  it('keeps out the campaigns the user reached the cap of within the window of the clock', async () => {
    const takePart = () => 0;
    expect(Array.from(await excludedCampaigns(sources, 'u-capped', 100, fixedClock(nowMs), takePart, new DecisionScratch()))).toEqual([codes.get(capped.id)]);
    // Two hours on, the impression has left the one-hour window.
    expect(Array.from(await excludedCampaigns(sources, 'u-capped', 100, fixedClock(nowMs + 7_200_000), takePart, new DecisionScratch()))).toEqual([]);
    expect(Array.from(await excludedCampaigns(sources, 'u-other', 100, fixedClock(nowMs), takePart, new DecisionScratch()))).toEqual([]);
  });
});
