// The decision path's report counters: entries and wins land in the local hour of their campaign's
// zone, also for zones 30 and 45 minutes off UTC whose hours start at a UTC quarter past or half
// past; a flushed file gives the same cells back after a restart, and cells past the retention go.
import { catalogFromFile } from '../../src/engine/model_catalog';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { expect, it } from 'vitest';

import { readModelDir } from '../../src/engine/model_dir';
import { createLogger } from '../../src/log';
import { appendAds } from '../../src/catalog/catalog';
import { DecisionCounters } from '../../src/money/decision_counters';
import { cellKeyOf, counterIndex, counterNames, parseCellKey } from '../../src/money/report_cells';
import { BidType } from '../../src/protocol/schema';
import { tinyModelDir } from '../setup/tiny_model';

const catalog = catalogFromFile(readModelDir(tinyModelDir)).catalog;
const kolkataAd = 0;
const kathmanduAd = catalog.campaignId.findIndex((campaign) => campaign !== catalog.campaignId[kolkataAd]);
const zoneOf = (campaignId: string): string =>
  campaignId === catalog.campaignId[kolkataAd] ? 'Asia/Kolkata' : campaignId === catalog.campaignId[kathmanduAd] ? 'Asia/Kathmandu' : 'UTC';
/** Local hours of 2026-01-15, numbered as report cells number them. */
const localHour = (hour: number): number => (Date.UTC(2026, 0, 15) / 86_400_000) * 24 + hour;
const log = createLogger('error');
/** Far past 2026-01-15: the flush drops cells older than the retention on the wall clock. */
const retentionHours = 24 * 3660;

function expectedCell(ad: number, hour: number, counts: Partial<Record<(typeof counterNames)[number], number>>): [string, number[]] {
  const key = cellKeyOf({
    campaignId: catalog.campaignId[ad]!,
    adId: catalog.adId.at(ad)!,
    advertiserId: catalog.advertiserId[ad]!,
    placement: 'Search',
    timeZone: zoneOf(catalog.campaignId[ad]!),
    hour: localHour(hour),
  });
  const counters = new Array<number>(counterNames.length).fill(0);
  for (const [name, count] of Object.entries(counts)) counters[counterIndex[name as (typeof counterNames)[number]]] = count;
  return [key, counters];
}

it('counts entries and wins in the local hour of zones 30 and 45 minutes off UTC, and keeps them across a restart', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-decisions-'));
  const counters = new DecisionCounters({ kind: 'file', dir }, retentionHours, zoneOf, log);
  const ads = (...indices: number[]): Int32Array => Int32Array.from(indices);
  // 04:29:59.999 UTC: 09:59 in Kolkata (+5:30), 10:14 in Kathmandu (+5:45).
  counters.enter(catalog, 'Search', ads(kolkataAd, kathmanduAd, kolkataAd), 3, Date.UTC(2026, 0, 15, 4, 29, 59, 999));
  // 04:30: 10:00 in Kolkata, still 10:15 in Kathmandu.
  counters.enter(catalog, 'Search', ads(kolkataAd, kathmanduAd), 2, Date.UTC(2026, 0, 15, 4, 30));
  // 05:15: still 10:45 in Kolkata, 11:00 in Kathmandu. A CPM win's served value is its price per mille: 2,000 micros, 2e6 nanos.
  counters.enter(catalog, 'Search', ads(kathmanduAd, kolkataAd, kathmanduAd), 3, Date.UTC(2026, 0, 15, 5, 15));
  counters.won(catalog, 'Search', kolkataAd, BidType.Cpm, 2_000_000, Date.UTC(2026, 0, 15, 5, 15));
  counters.won(catalog, 'Search', kathmanduAd, BidType.Cpc, 300_000, Date.UTC(2026, 0, 15, 5, 15));
  const expected = new Map([
    expectedCell(kolkataAd, 9, { entered: 2 }),
    expectedCell(kolkataAd, 10, { entered: 2, wonCpm: 1, clearingCpmMicros: 2_000_000, servedValueNanos: 2_000_000 }),
    expectedCell(kathmanduAd, 10, { entered: 2 }),
    expectedCell(kathmanduAd, 11, { entered: 2, wonCpc: 1, clearingCpcMicros: 300_000, servedValueNanos: 300_000_000 }),
  ]);
  const day = Date.UTC(2026, 0, 15) / 86_400_000;
  expect(new Map(await counters.reportCells(day, day))).toEqual(expected);
  expect(await counters.reportCells(day + 1, day + 1)).toEqual([]);
  await counters.close();
  const restarted = new DecisionCounters({ kind: 'file', dir }, retentionHours, zoneOf, log);
  expect(new Map(await restarted.reportCells(day, day))).toEqual(expected);
  // With a day of retention they are months old on the wall clock: the next flush drops them.
  const shortLived = new DecisionCounters({ kind: 'file', dir }, 24, zoneOf, log);
  await shortLived.flush();
  expect(await shortLived.reportCells(day, day)).toEqual([]);
});

it('folds and writes a catalog of entries a slice per turn of the event loop, and the file gives every cell back', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-decisions-'));
  // Reads of an ad's campaign, one per ad folded: counted per turn.
  let readsThisTurn = 0;
  const campaignId = new Proxy(catalog.campaignId, {
    get(target, property, receiver) {
      if (typeof property === 'string' && /^\d+$/.test(property)) readsThisTurn++;
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
  const counted = Object.create(catalog, { campaignId: { value: campaignId } }) as typeof catalog;
  const counters = new DecisionCounters({ kind: 'file', dir }, retentionHours, zoneOf, log);
  const every = Int32Array.from({ length: catalog.size }, (_, ad) => ad);
  const placements = Array.from({ length: 25 }, (_, i) => `placement-${i}`);
  const at = Date.UTC(2026, 0, 15, 5, 15);
  for (const placement of placements) counters.enter(counted, placement, every, every.length, at);
  // JSON.stringify of a slice of cells (the only long ones here): counted per turn too.
  const stringify = JSON.stringify;
  let cellsThisTurn = 0;
  JSON.stringify = ((...args: Parameters<typeof stringify>) => {
    if (Array.isArray(args[0])) cellsThisTurn += (args[0] as unknown[]).length;
    return stringify(...args);
  }) as typeof stringify;
  let turns = 0;
  let mostReads = 0;
  let mostCells = 0;
  let flushed = false;
  try {
    readsThisTurn = 0;
    const flush = counters.flush().then(() => (flushed = true));
    while (!flushed) {
      mostReads = Math.max(mostReads, readsThisTurn);
      mostCells = Math.max(mostCells, cellsThisTurn);
      readsThisTurn = cellsThisTurn = 0;
      turns++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await flush;
  } finally {
    JSON.stringify = stringify;
  }
  const cells = placements.length * catalog.size;
  expect(turns).toBeGreaterThan(cells / 500 + cells / 1_000);
  expect(mostReads).toBeGreaterThan(0);
  expect(mostReads).toBeLessThanOrEqual(500);
  expect(mostCells).toBeLessThanOrEqual(1_000);
  const day = Date.UTC(2026, 0, 15) / 86_400_000;
  const restarted = new DecisionCounters({ kind: 'file', dir }, retentionHours, zoneOf, log);
  const restored = await restarted.reportCells(day, day);
  expect(restored).toHaveLength(cells);
  expect(new Map(restored)).toEqual(new Map(await counters.reportCells(day, day)));
  expect(restored.every(([, values]) => values[counterIndex.entered] === 1)).toBe(true);
});

it("puts an ad's entries in its campaign's new zone once the zone changes", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-decisions-'));
  let zone = 'UTC';
  const counters = new DecisionCounters({ kind: 'file', dir }, retentionHours, () => zone, log);
  const at = Date.UTC(2026, 0, 15, 5, 15);
  counters.enter(catalog, 'Search', Int32Array.of(kolkataAd), 1, at);
  await counters.flush();
  // London keeps UTC's hour in January: only the zone tells the two cells apart.
  zone = 'Europe/London';
  counters.enter(catalog, 'Search', Int32Array.of(kolkataAd), 1, at + 1);
  await counters.flush();
  const day = Date.UTC(2026, 0, 15) / 86_400_000;
  const zones = (await counters.reportCells(day, day)).map(([key, values]) => [key.split('\u0000')[4], values[counterIndex.entered]]);
  expect(zones.sort()).toEqual([
    ['Europe/London', 1],
    ['UTC', 1],
  ]);
});

it("puts each win in the cell of its own hour and its campaign's zone at the time, whatever cells the ad's entries and earlier wins went to", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-decisions-'));
  let zone = 'UTC';
  const counters = new DecisionCounters({ kind: 'file', dir }, retentionHours, () => zone, log);
  const at = Date.UTC(2026, 0, 15, 5, 15);
  counters.enter(catalog, 'Search', Int32Array.of(kolkataAd), 1, at);
  counters.won(catalog, 'Search', kolkataAd, BidType.Cpc, 100, at);
  await counters.flush();
  counters.won(catalog, 'Search', kolkataAd, BidType.Cpc, 200, at + 3_600_000);
  zone = 'Europe/London';
  counters.won(catalog, 'Search', kolkataAd, BidType.Cpc, 400, at + 3_600_000 + 1);
  counters.won(catalog, 'Home', kolkataAd, BidType.Cpc, 800, at + 3_600_000 + 2);
  const day = Date.UTC(2026, 0, 15) / 86_400_000;
  const cells = (await counters.reportCells(day, day)).map(([key, values]) => {
    const { placement, timeZone, hour } = parseCellKey(key);
    return [placement, timeZone, hour - localHour(5), values[counterIndex.entered], values[counterIndex.clearingCpcMicros]];
  });
  expect(cells.sort()).toEqual([
    ['Home', 'Europe/London', 1, 0, 800],
    ['Search', 'Europe/London', 1, 0, 400],
    ['Search', 'UTC', 0, 1, 100],
    ['Search', 'UTC', 1, 0, 200],
  ]);
});

it('counts the entries of ads added to the catalog since its first entry of the interval', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-decisions-'));
  // A catalog of its own: appending grows it in place, as ads added at run time do.
  const growing = catalogFromFile(readModelDir(tinyModelDir)).catalog;
  const counters = new DecisionCounters({ kind: 'file', dir }, retentionHours, () => 'UTC', log);
  const at = Date.UTC(2026, 0, 15, 5, 15);
  counters.enter(growing, 'Search', Int32Array.of(0), 1, at);
  const first = growing.adId.at(0)!;
  const { campaignId, advertiserId } = { campaignId: growing.campaignId[0]!, advertiserId: growing.advertiserId[0]! };
  const added = appendAds(growing, [
    {
      id: 'appended-ad',
      campaign_id: campaignId,
      advertiser_id: advertiserId,
      product_id: 'p-appended',
      category: growing.category[0]!,
      format: 'native',
      title: 'Appended',
      landing_url: 'https://example.com/appended',
      image_url: 'https://example.com/appended.png',
      price_micros: 1_000_000,
      landing_quality: 0.5,
      rating: 4,
    },
  ]);
  counters.enter(growing, 'Search', Int32Array.of(added, 0, added), 3, at + 1);
  const day = Date.UTC(2026, 0, 15) / 86_400_000;
  const entered = new Map((await counters.reportCells(day, day)).map(([key, values]) => [parseCellKey(key).adId, values[counterIndex.entered]]));
  expect(entered).toEqual(
    new Map([
      [first, 2],
      ['appended-ad', 2],
    ]),
  );
});
