// Opens catalog stores for tests on both backends: a SQLite file in a fresh temporary directory,
// and a fresh database on one PostgreSQL cluster started per test file.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll } from 'vitest';

import { defaults } from '../../src/config';
import { CatalogStore, type StoreLocation, type StoreOptions } from '../../src/store/store';
import { type PostgresServer, startPostgres } from './postgres';

export type Backend = 'sqlite' | 'postgres';
export const backends: Backend[] = ['sqlite', 'postgres'];

export interface StoreFixture {
  postgres(): PostgresServer;
  /** A location no store has used yet. */
  freshLocation(backend: Backend): Promise<StoreLocation>;
  /** Opens a store at `location` (default: a fresh one); it is closed after the test. */
  open(backend: Backend, location?: StoreLocation, options?: Partial<StoreOptions>): Promise<CatalogStore>;
}

/** Call at the top of a test file. */
export function useStores(): StoreFixture {
  let server: PostgresServer | undefined;
  const opened: CatalogStore[] = [];
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });
  afterAll(async () => {
    await server?.stop();
  });
  const fixture: StoreFixture = {
    postgres: () => server!,
    async freshLocation(backend) {
      if (backend === 'sqlite') return { kind: 'sqlite', file: path.join(mkdtempSync(path.join(tmpdir(), 'adserve-store-')), 'catalog.sqlite') };
      return { kind: 'postgres', url: await server!.createDatabase() };
    },
    async open(backend, location, options) {
      const store = await CatalogStore.open({ location: location ?? (await fixture.freshLocation(backend)), limits: defaults, ...options });
      opened.push(store);
      return store;
    },
  };
  return fixture;
}

export const advertiser = (id = 'adv1') => ({ id, name: `Advertiser ${id}`, category: 'electronics' });

export const campaign = (id = 'c1', advertiserId = 'adv1') => ({
  id,
  advertiser_id: advertiserId,
  name: `Campaign ${id}`,
  bid_type: 'CPC',
  bid_micros: 540_000,
  daily_budget_micros: 108_000_000,
  lifetime_budget_micros: 3_240_000_000,
  pacing: 'even',
  frequency_cap: { impressions: 3, window_seconds: 3600 },
  time_zone: 'America/New_York',
  flight_start: '2026-12-01T00:00',
  flight_end: '2027-01-01T00:00:00',
  targeting: [
    [{ type: 'geo', value: 'US' }],
    [
      { type: 'device', value: 'mobile' },
      { type: 'negative', value: 'refurbished', not: true },
    ],
  ],
});

export const ad = (id = 'ad1', campaignId = 'c1') => ({
  id,
  campaign_id: campaignId,
  product_id: `p-${id}`,
  category: 'electronics',
  format: 'product_card',
  title: 'Noise-cancelling headphones',
  keywords: ['headphones', 'audio'],
  landing_url: `https://shop.example/${id}`,
  image_url: `https://img.example/${id}.jpg`,
  price_micros: 199_000_000,
  landing_quality: 0.8,
  rating: 4.5,
  targeting: [[{ type: 'phrase', value: 'wireless headphones' }]],
});
