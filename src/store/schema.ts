// The catalog database: its tables as Kysely sees them and the migrations that create them. One
// schema serves SQLite and PostgreSQL; the only dialect difference is that PostgreSQL ids use the
// "C" collation, so that ids sort bytewise there as in SQLite and cursor pages agree across both.
import { randomUUID } from 'node:crypto';

import { type CreateTableBuilder, type Kysely, type Migration, sql } from 'kysely';

export type DialectKind = 'sqlite' | 'postgres';

/** Times are milliseconds since the epoch, money integer micros; JSON columns hold JSON text. */
interface RowColumns {
  id: string;
  status: string;
  version: number;
  /** SHA-256 of the normalised create body, so that a repeated create with a client id is recognised. */
  create_hash: string;
  created_at: number;
  updated_at: number;
  archived_at: number | null;
}

export interface AdvertiserTable extends RowColumns {
  name: string;
  category: string | null;
}

export interface CampaignTable extends RowColumns {
  advertiser_id: string;
  name: string;
  bid_type: string;
  bid_micros: number;
  daily_budget_micros: number;
  lifetime_budget_micros: number | null;
  pacing: string;
  frequency_cap: string | null;
  time_zone: string;
  day_parting: string | null;
  flight_start: string | null;
  flight_end: string | null;
  targeting: string | null;
}

export interface AdTable extends RowColumns {
  campaign_id: string;
  advertiser_id: string;
  product_id: string;
  category: string;
  format: string;
  title: string;
  keywords: string;
  landing_url: string;
  image_url: string;
  price_micros: number;
  landing_quality: number;
  rating: number;
  targeting: string | null;
  policy_flags: string;
}

export interface ChangeTable {
  seq: number;
  entity: string;
  entity_id: string;
  version: number;
  op: string;
  at: number;
  /** Comma-separated fields an update changed; '' for a create or an archive; '*' for changes written before 0002. */
  fields: string;
}

export interface StoreDatabase {
  advertisers: AdvertiserTable;
  campaigns: CampaignTable;
  ads: AdTable;
  changes: ChangeTable;
  /** One row: the last seq handed out. Its row lock orders writers, so seq order is commit order. */
  change_sequence: { id: number; last_seq: number };
  idempotency_keys: { entity: string; key: string; request_hash: string; entity_id: string; created_at: number };
  /** 'seed': 'pending' from creation until seedFromCatalog has imported the model's catalog, then 'done'. */
  store_meta: { key: string; value: string };
}

const rowColumns = <C extends string>(table: CreateTableBuilder<string, C>) =>
  table
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('create_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('archived_at', 'bigint');

export const migrationTable = 'store_migrations';
export const migrationLockTable = 'store_migration_lock';

type IdType = ReturnType<typeof sql>;

async function createAdvertisers(db: Kysely<unknown>, idType: IdType): Promise<void> {
  await db.schema
    .createTable('advertisers')
    .addColumn('id', idType, (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('category', 'text')
    .$call(rowColumns)
    .execute();
  await db.schema.createIndex('advertisers_status').on('advertisers').columns(['status', 'id']).execute();
}

async function createCampaigns(db: Kysely<unknown>, idType: IdType): Promise<void> {
  await db.schema
    .createTable('campaigns')
    .addColumn('id', idType, (c) => c.primaryKey())
    .addColumn('advertiser_id', idType, (c) => c.notNull().references('advertisers.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('bid_type', 'text', (c) => c.notNull())
    .addColumn('bid_micros', 'bigint', (c) => c.notNull())
    .addColumn('daily_budget_micros', 'bigint', (c) => c.notNull())
    .addColumn('lifetime_budget_micros', 'bigint')
    .addColumn('pacing', 'text', (c) => c.notNull())
    .addColumn('frequency_cap', 'text')
    .addColumn('time_zone', 'text', (c) => c.notNull())
    .addColumn('day_parting', 'text')
    .addColumn('flight_start', 'text')
    .addColumn('flight_end', 'text')
    .addColumn('targeting', 'text')
    .$call(rowColumns)
    .execute();
  await db.schema.createIndex('campaigns_advertiser').on('campaigns').columns(['advertiser_id', 'id']).execute();
  await db.schema.createIndex('campaigns_status').on('campaigns').columns(['status', 'id']).execute();
}

async function createAds(db: Kysely<unknown>, idType: IdType): Promise<void> {
  await db.schema
    .createTable('ads')
    .addColumn('id', idType, (c) => c.primaryKey())
    .addColumn('campaign_id', idType, (c) => c.notNull().references('campaigns.id'))
    .addColumn('advertiser_id', idType, (c) => c.notNull().references('advertisers.id'))
    .addColumn('product_id', 'text', (c) => c.notNull())
    .addColumn('category', 'text', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('keywords', 'text', (c) => c.notNull())
    .addColumn('landing_url', 'text', (c) => c.notNull())
    .addColumn('image_url', 'text', (c) => c.notNull())
    .addColumn('price_micros', 'bigint', (c) => c.notNull())
    .addColumn('landing_quality', 'double precision', (c) => c.notNull())
    .addColumn('rating', 'double precision', (c) => c.notNull())
    .addColumn('targeting', 'text')
    .addColumn('policy_flags', 'text', (c) => c.notNull())
    .$call(rowColumns)
    .execute();
  await db.schema.createIndex('ads_campaign').on('ads').columns(['campaign_id', 'id']).execute();
  await db.schema.createIndex('ads_advertiser').on('ads').columns(['advertiser_id', 'id']).execute();
  await db.schema.createIndex('ads_status').on('ads').columns(['status', 'id']).execute();
}

/** The change sequence, idempotency keys and the seed marker. */
async function createBookkeeping(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('changes')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('entity', 'text', (c) => c.notNull())
    .addColumn('entity_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('change_sequence')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('last_seq', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('idempotency_keys')
    .addColumn('entity', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('entity_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['entity', 'key'])
    .execute();
  await db.schema
    .createTable('store_meta')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
  const typed = db as unknown as Kysely<StoreDatabase>;
  await typed.insertInto('change_sequence').values({ id: 1, last_seq: 0 }).execute();
  await typed.insertInto('store_meta').values({ key: 'seed', value: 'pending' }).execute();
}

/** Migrations by name, applied in name order, each once; never edit one that has shipped, add the next. */
export function migrations(dialect: DialectKind): Record<string, Migration> {
  const idType = dialect === 'postgres' ? sql`text collate "C"` : sql`text`;
  return {
    '0001_catalog': {
      async up(db: Kysely<unknown>) {
        await createAdvertisers(db, idType);
        await createCampaigns(db, idType);
        await createAds(db, idType);
        await createBookkeeping(db);
      },
    },
    '0002_change_fields': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .alterTable('changes')
          .addColumn('fields', 'text', (c) => c.notNull().defaultTo('*'))
          .execute();
      },
    },
    // Names this database for the copies of it a replica keeps (the catalog snapshot in its dataDir),
    // so that a copy of another database, or of this one restored from an older backup, is not taken for it.
    '0003_store_id': {
      async up(db: Kysely<unknown>) {
        await (db as unknown as Kysely<StoreDatabase>).insertInto('store_meta').values({ key: 'store_id', value: randomUUID() }).execute();
      },
    },
  };
}
