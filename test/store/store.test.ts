// The catalog store on a real SQLite file and a real PostgreSQL 15, every case on both.
import { describe, expect, test } from 'vitest';

import { StoreArchivedError, StoreIdempotencyConflictError, StoreNotFoundError, StoreValidationError, StoreVersionConflictError } from '../../src/store/errors';
import type { CatalogStore } from '../../src/store/store';
import { ad, advertiser, backends, campaign, useStores } from '../helpers/catalog_store';

const stores = useStores();

async function withCampaign(store: CatalogStore): Promise<void> {
  await store.createAdvertiser(advertiser());
  await store.createCampaign(campaign());
}

describe.each(backends)('catalog store on %s', (backend) => {
  test('migrations run once: a reopened store and a second migrate apply nothing', async () => {
    const location = await stores.freshLocation(backend);
    const first = await stores.open(backend, location);
    expect(await first.migrate()).toEqual([]);
    await first.createAdvertiser(advertiser());
    await first.close();
    // Replicas opening one PostgreSQL database at once must not both migrate (a SQLite file has one owner).
    const [second, third] =
      backend === 'postgres'
        ? await Promise.all([stores.open(backend, location), stores.open(backend, location)])
        : [await stores.open(backend, location), await stores.open(backend, location)];
    expect(await second.migrate()).toEqual([]);
    expect((await third.get('advertiser', 'adv1'))?.name).toBe('Advertiser adv1');
    expect(await third.currentSeq()).toBe(1);
  });

  test('CRUD round trip keeps every field', async () => {
    const store = await stores.open(backend);
    const created = await store.createAdvertiser(advertiser());
    expect(created.created).toBe(true);
    expect(created.row).toMatchObject({ ...advertiser(), status: 'active', version: 1, archived_at: null });
    const { row: campaignRow } = await store.createCampaign(campaign());
    expect(campaignRow).toMatchObject({ ...campaign(), flight_start: '2026-12-01T00:00:00', day_parting: null, status: 'active', version: 1 });
    const { row: adRow } = await store.createAd(ad());
    expect(adRow).toMatchObject({ ...ad(), advertiser_id: 'adv1', policy_flags: [], status: 'active', version: 1 });
    expect(await store.get('campaign', 'c1')).toEqual(campaignRow);
    expect(await store.get('ad', 'ad1')).toEqual(adRow);
    expect(await store.get('ad', 'nope')).toBeUndefined();

    const updated = await store.update('campaign', 'c1', { bid_micros: 600_000, frequency_cap: null, status: 'paused' }, { ifVersion: 1 });
    expect(updated).toMatchObject({ bid_micros: 600_000, frequency_cap: null, status: 'paused', version: 2, daily_budget_micros: 108_000_000 });
    expect(await store.get('campaign', 'c1')).toEqual(updated);
    const generated = await store.createAd({ ...ad(), id: undefined });
    expect(generated.row.id).toMatch(/^[0-9a-f-]{36}$/);
    // A PATCH that changes nothing keeps the version (and appends no change).
    const seq = await store.currentSeq();
    expect((await store.update('ad', 'ad1', { title: ad().title })).version).toBe(1);
    expect(await store.currentSeq()).toBe(seq);
    await expect(store.update('ad', 'missing', { title: 'x' })).rejects.toBeInstanceOf(StoreNotFoundError);
  });

  test('an update or archive naming a stale version fails and changes nothing', async () => {
    const store = await stores.open(backend);
    await withCampaign(store);
    await store.update('campaign', 'c1', { bid_micros: 700_000 }, { ifVersion: 1 });
    const stale = store.update('campaign', 'c1', { bid_micros: 800_000 }, { ifVersion: 1 });
    await expect(stale).rejects.toBeInstanceOf(StoreVersionConflictError);
    await expect(stale).rejects.toMatchObject({ code: 'E_VERSION_CONFLICT', expectedVersion: 1, currentVersion: 2 });
    await expect(store.archive('campaign', 'c1', { ifVersion: 1 })).rejects.toBeInstanceOf(StoreVersionConflictError);
    expect(await store.get('campaign', 'c1')).toMatchObject({ bid_micros: 700_000, version: 2, status: 'active' });
    // Racing writers that read the same version: exactly one wins.
    const race = await Promise.allSettled([1, 2, 3, 4].map((n) => store.update('campaign', 'c1', { bid_micros: 900_000 + n }, { ifVersion: 2 })));
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(race.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof StoreVersionConflictError)).toBe(true);
    expect((await store.get('campaign', 'c1'))!.version).toBe(3);
    // Without If-Match every concurrent patch applies, one after another.
    const fields = ['bid_micros', 'daily_budget_micros', 'lifetime_budget_micros'] as const;
    await Promise.all(fields.map((field) => store.update('campaign', 'c1', { [field]: 777_000 })));
    expect(await store.get('campaign', 'c1')).toMatchObject({ bid_micros: 777_000, daily_budget_micros: 777_000, lifetime_budget_micros: 777_000, version: 6 });
  });

  test('idempotent creates: the same key or client id with the same body returns the first row, a different body conflicts', async () => {
    const store = await stores.open(backend);
    await withCampaign(store);
    const body = { ...ad(), id: undefined };
    const first = await store.createAd(body, { idempotencyKey: 'key-1' });
    const again = await store.createAd({ ...body, status: 'active' }, { idempotencyKey: 'key-1' });
    expect(again).toEqual({ row: first.row, created: false });
    await expect(store.createAd({ ...body, title: 'Other' }, { idempotencyKey: 'key-1' })).rejects.toBeInstanceOf(StoreIdempotencyConflictError);
    // Concurrent repeats of one key create one row.
    const parallel = await Promise.all([1, 2, 3].map(() => store.createAd(body, { idempotencyKey: 'key-2' })));
    expect(new Set(parallel.map((result) => result.row.id)).size).toBe(1);
    expect(parallel.filter((result) => result.created)).toHaveLength(1);

    expect((await store.createAd(ad('ad-x'))).created).toBe(true);
    expect((await store.createAd(ad('ad-x'))).created).toBe(false);
    await expect(store.createAd({ ...ad('ad-x'), rating: 1 })).rejects.toMatchObject({ code: 'E_IDEMPOTENCY_CONFLICT' });
    expect((await store.listAds()).items.map((row) => row.id).sort()).toEqual(['ad-x', first.row.id, parallel[0]!.row.id].sort());
    const creates = (await store.changesSince(0)).filter((change) => change.entity === 'ad');
    expect(creates).toHaveLength(3);
  });

  test('archive keeps the row and its history; archived rows take no edits and no children', async () => {
    const store = await stores.open(backend);
    await withCampaign(store);
    await store.createAd(ad());
    await store.update('campaign', 'c1', { daily_budget_micros: 5_000_000 });
    const archived = await store.archive('campaign', 'c1', { ifVersion: 2 });
    expect(archived).toMatchObject({ status: 'archived', version: 3, daily_budget_micros: 5_000_000 });
    expect(archived.archived_at).not.toBeNull();
    expect(await store.get('campaign', 'c1')).toEqual(archived);
    expect(await store.archive('campaign', 'c1')).toEqual(archived);
    await expect(store.update('campaign', 'c1', { bid_micros: 1 })).rejects.toBeInstanceOf(StoreArchivedError);
    await expect(store.createAd(ad('ad2'))).rejects.toMatchObject({ field: 'campaign_id' });
    expect((await store.listCampaigns({ status: 'archived' })).items.map((row) => row.id)).toEqual(['c1']);
    expect((await store.listCampaigns({ status: 'active' })).items).toEqual([]);
    // The ad and its billing identity stay readable.
    expect(await store.get('ad', 'ad1')).toMatchObject({ campaign_id: 'c1', advertiser_id: 'adv1' });
    // Each change names the fields it moved, so a follower tells a pause from new content.
    const history = (await store.changesSince(0)).filter((change) => change.id === 'c1').map(({ op, version, fields }) => [op, version, fields]);
    expect(history).toEqual([
      ['create', 1, []],
      ['update', 2, ['daily_budget_micros']],
      ['archive', 3, []],
    ]);
  });

  test('cursor pages are stable, in id order, and follow filters', async () => {
    const store = await stores.open(backend);
    await store.createAdvertiser(advertiser('adv1'));
    await store.createAdvertiser(advertiser('adv2'));
    await store.createCampaign(campaign('c1', 'adv1'));
    await store.createCampaign(campaign('c2', 'adv2'));
    // Mixed case and digits: bytewise order must hold on both backends.
    const ids = Array.from({ length: 23 }, (_, n) => `${n % 2 ? 'B' : 'a'}d-${String((n * 7919) % 1000).padStart(3, '0')}`);
    for (const [n, id] of ids.entries()) await store.createAd({ ...ad(id, n % 3 ? 'c1' : 'c2'), status: n % 4 ? 'active' : 'paused' });
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let pages = 0; ; pages++) {
      const page = await store.listAds({ limit: 5, cursor });
      seen.push(...page.items.map((row) => row.id));
      if (pages === 1) await store.createAd(ad('AAA-inserted-before-cursor'));
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    const sorted = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(seen).toEqual(sorted);
    const byCampaign = await store.listAds({ campaignId: 'c2', limit: 1000 });
    expect(byCampaign.items.map((row) => row.id)).toEqual(sorted.filter((id) => ids.indexOf(id) % 3 === 0));
    expect(byCampaign.next_cursor).toBeNull();
    const byAdvertiser = await store.listAds({ advertiserId: 'adv2', status: 'paused' });
    expect(byAdvertiser.items.map((row) => row.id)).toEqual(sorted.filter((id) => ids.indexOf(id) % 3 === 0 && ids.indexOf(id) % 4 === 0));
    expect((await store.listCampaigns({ advertiserId: 'adv1' })).items.map((row) => row.id)).toEqual(['c1']);
    await expect(store.listAds({ cursor: 'not-a-cursor' })).rejects.toMatchObject({ field: 'cursor' });
    await expect(store.listAds({ limit: 0 })).rejects.toMatchObject({ field: 'limit' });
  });

  test('changesSince returns every committed write once, gapless and in order', async () => {
    const store = await stores.open(backend);
    await withCampaign(store);
    await store.createAd(ad());
    await expect(store.update('ad', 'ad1', { rating: 9 })).rejects.toBeInstanceOf(StoreValidationError);
    await expect(store.createAd(ad('ad2', 'no-such-campaign'))).rejects.toBeInstanceOf(StoreValidationError);
    await store.update('ad', 'ad1', { status: 'paused' });
    await store.archive('ad', 'ad1');
    const all = await store.changesSince(0);
    expect(all.map(({ seq, entity, id, version, op }) => [seq, entity, id, version, op])).toEqual([
      [1, 'advertiser', 'adv1', 1, 'create'],
      [2, 'campaign', 'c1', 1, 'create'],
      [3, 'ad', 'ad1', 1, 'create'],
      [4, 'ad', 'ad1', 2, 'update'],
      [5, 'ad', 'ad1', 3, 'archive'],
    ]);
    expect(await store.currentSeq()).toBe(5);
    expect((await store.changesSince(2, 2)).map((change) => change.seq)).toEqual([3, 4]);
    expect(await store.changesSince(5)).toEqual([]);
    // Concurrent writers still get distinct, consecutive seqs.
    await Promise.all(Array.from({ length: 12 }, (_, n) => store.createAd(ad(`p${n}`))));
    expect((await store.changesSince(5)).map((change) => change.seq)).toEqual(Array.from({ length: 12 }, (_, n) => 6 + n));
  });

  test('validation errors name the field', async () => {
    const store = await stores.open(backend);
    await withCampaign(store);
    const { maxBidMicros, maxBudgetMicros } = (await import('../../src/config')).defaults;
    const campaignCases: Array<[Record<string, unknown>, string]> = [
      [{ bid_micros: undefined }, 'bid_micros'],
      [{ bid_micros: 1.5 }, 'bid_micros'],
      [{ bid_micros: maxBidMicros + 1 }, 'bid_micros'],
      [{ daily_budget_micros: -1 }, 'daily_budget_micros'],
      [{ lifetime_budget_micros: maxBudgetMicros + 1 }, 'lifetime_budget_micros'],
      [{ bid_type: 'CPX' }, 'bid_type'],
      [{ pacing: 'fast' }, 'pacing'],
      [{ time_zone: 'Mars/Olympus' }, 'time_zone'],
      [{ flight_start: '2026-02-30T00:00' }, 'flight_start'],
      [{ flight_end: '2026-12-01T00:00Z' }, 'flight_end'],
      [{ flight_end: '2026-11-30T23:59' }, 'flight_end'],
      [{ frequency_cap: { impressions: 0, window_seconds: 60 } }, 'frequency_cap.impressions'],
      [{ frequency_cap: { impressions: 1 } }, 'frequency_cap.window_seconds'],
      [{ day_parting: [1, 2] }, 'day_parting'],
      [{ targeting: [[]] }, 'targeting[0]'],
      [
        {
          targeting: [
            [
              { type: 'geo', value: 'US' },
              { type: 'zip', value: '1' },
            ],
          ],
        },
        'targeting[0][1].type',
      ],
      [{ targeting: [[{ type: 'geo', value: '' }]] }, 'targeting[0][0].value'],
      [{ targeting: [[{ type: 'geo', value: 'US', not: 'yes' }]] }, 'targeting[0][0].not'],
      // Names and keywords the engine could never match are refused here, not when the ad is embedded.
      [{ targeting: [[{ type: 'placement', value: 'billboard' }]] }, 'targeting[0][0].value'],
      [
        {
          targeting: [
            [
              { type: 'device', value: 'Mobile' },
              { type: 'device', value: 'watch' },
            ],
          ],
        },
        'targeting[0][1].value',
      ],
      [{ targeting: [[{ type: 'exact', value: '!!!' }]] }, 'targeting[0][0].value'],
      [{ targeting: { geo: 'US' } }, 'targeting'],
      [{ status: 'archived' }, 'status'],
      [{ advertiser_id: 'adv-missing' }, 'advertiser_id'],
      [{ colour: 'red' }, 'colour'],
    ];
    for (const [change, field] of campaignCases) {
      const error = await store.createCampaign({ ...campaign('c-new'), ...change }).catch((e: unknown) => e);
      expect(error, JSON.stringify(change)).toBeInstanceOf(StoreValidationError);
      expect((error as StoreValidationError).field, JSON.stringify(change)).toBe(field);
    }
    const adCases: Array<[Record<string, unknown>, string]> = [
      [{ title: undefined }, 'title'],
      [{ title: '  ' }, 'title'],
      [{ landing_quality: 0 }, 'landing_quality'],
      [{ price_micros: -5 }, 'price_micros'],
      [{ keywords: ['ok', 3] }, 'keywords[1]'],
      [{ advertiser_id: 'adv2' }, 'advertiser_id'],
      [{ id: 'has space' }, 'id'],
    ];
    for (const [change, field] of adCases) {
      await expect(store.createAd({ ...ad('ad-new'), ...change }), JSON.stringify(change)).rejects.toMatchObject({ code: 'E_INVALID', field });
    }
    await expect(store.createAdvertiser('not an object')).rejects.toMatchObject({ field: 'body' });
    await expect(store.update('campaign', 'c1', { advertiser_id: 'adv2' })).rejects.toMatchObject({ field: 'advertiser_id' });
    await expect(store.update('campaign', 'c1', { bid_micros: 0 })).rejects.toMatchObject({ field: 'bid_micros' });
    expect(await store.currentSeq()).toBe(2);
  });

  test('createMany writes the good inputs of a batch, reports each refused one in its place, and replays repeats', async () => {
    const store = await stores.open(backend);
    await withCampaign(store);
    await store.createAd(ad('stored'));
    await store.archive('campaign', (await store.createCampaign(campaign('gone'))).row.id);
    const outcomes = await store.createMany('ad', [
      ad('new-1'),
      { ...ad('bad'), price_micros: -1 },
      ad('stored'),
      { ...ad('stored'), title: 'Other' },
      ad('new-1'),
      { ...ad('new-1'), title: 'Other' },
      ad('orphan', 'nope'),
      ad('late', 'gone'),
      { ...ad('wrong-adv'), advertiser_id: 'adv9' },
      { ...ad(), id: undefined },
    ]);
    const summary = outcomes.map((outcome) =>
      outcome.ok
        ? { id: outcome.row.id.length === 36 ? 'uuid' : outcome.row.id, created: outcome.created }
        : { code: outcome.error.code, field: (outcome.error as StoreValidationError).field },
    );
    expect(summary).toEqual([
      { id: 'new-1', created: true },
      { code: 'E_INVALID', field: 'price_micros' },
      { id: 'stored', created: false },
      { code: 'E_IDEMPOTENCY_CONFLICT', field: undefined },
      { id: 'new-1', created: false },
      { code: 'E_IDEMPOTENCY_CONFLICT', field: undefined },
      { code: 'E_INVALID', field: 'campaign_id' },
      { code: 'E_INVALID', field: 'campaign_id' },
      { code: 'E_INVALID', field: 'advertiser_id' },
      { id: 'uuid', created: true },
    ]);
    expect(await store.get('ad', 'new-1')).toMatchObject({ advertiser_id: 'adv1', title: ad().title, version: 1 });
    expect(await store.get('ad', 'bad')).toBeUndefined();
    // One change per row written, in the batch's order, after the five earlier writes.
    expect((await store.changesSince(5)).map((change) => change.op)).toEqual(['create', 'create']);
  });
});
