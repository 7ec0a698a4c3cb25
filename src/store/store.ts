// The catalog store: advertisers, campaigns and ads in SQLite (one process owns the file) or
// PostgreSQL (shared by a fleet), behind one API and one Kysely query layer. Every write runs in
// one transaction that also appends its changes to the change sequence, so a reader that follows
// the sequence sees exactly the committed rows, in commit order.
import { randomUUID } from 'node:crypto';

import Database from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Transaction, sql } from 'kysely';
import pg from 'pg';

import {
  StoreArchivedError,
  type StoreEntity,
  StoreError,
  StoreIdempotencyConflictError,
  StoreNotFoundError,
  StoreValidationError,
  StoreVersionConflictError,
} from './errors';
import { ChangeFollower, type ChangeSignal, type FollowOptions, LocalSignal, notifyChannel, PostgresSignal } from './follow';
import { type DialectKind, migrationLockTable, migrations, migrationTable, type StoreDatabase } from './schema';
import type { ServedAdRow } from '../catalog/ad_columns';
import type { AdRow, AdvertiserRow, CampaignRow, Change, ChangeOp, EntityRows, Page, RowStatus } from './types';
import { adFields, advertiserFields, campaignFields, requestHash, type StoreLimits } from './validate';

export type StoreLocation = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

export interface StoreOptions {
  location: StoreLocation;
  limits: StoreLimits;
  /** PostgreSQL: first delay before a lost LISTEN connection is reopened, in milliseconds. */
  listenerReconnectMs?: number;
  /** PostgreSQL: connections in the query pool. */
  poolSize?: number;
  onError?(error: Error): void;
}

export interface CreateOptions {
  /** Stored with the request's hash: the same key and body return the first create's row. */
  idempotencyKey?: string;
}

export interface WriteOptions {
  /** The version the caller last saw (If-Match); a different current version fails with StoreVersionConflictError. */
  ifVersion?: number;
}

export interface CreateResult<Row> {
  row: Row;
  /** False when an idempotent repeat returned the row the first request created. */
  created: boolean;
}

/** One input of createMany: its row, or why the store refused it. */
export type BatchOutcome<Row> = ({ ok: true } & CreateResult<Row>) | { ok: false; error: StoreError };

export interface ListOptions {
  status?: RowStatus;
  /** 1..1000, default 100. */
  limit?: number;
  cursor?: string;
}

type Tables = 'advertisers' | 'campaigns' | 'ads';
type Db = Kysely<StoreDatabase>;
type Trx = Transaction<StoreDatabase>;
type DbRow = Record<string, unknown> & {
  id: string;
  status: string;
  version: number;
  create_hash: string;
  created_at: number;
  updated_at: number;
  archived_at: number | null;
};
type Fields = Record<string, unknown> & { id: string | undefined };
/** A change a write collects; its seq is assigned when the transaction appends it. */
type PendingChange = Omit<Change, 'seq' | 'at'> & { at: number };

interface EntitySpec {
  table: Tables;
  /** Columns holding JSON text. */
  json: readonly string[];
  /** Fields an update may not change. */
  immutable: readonly string[];
  fields(input: unknown, limits: StoreLimits): Fields;
  /** Checks the rows a new one hangs under, and fills what it inherits from them. */
  attach(trx: Trx, fields: Fields): Promise<void>;
}

const maxPage = 1000;
const maxIdempotencyKey = 256;

async function activeParent(trx: Trx, table: 'advertisers' | 'campaigns', field: string, id: string): Promise<{ advertiser_id?: string }> {
  const entity = table === 'advertisers' ? 'advertiser' : 'campaign';
  const parent = await trx.selectFrom(table).selectAll().where('id', '=', id).executeTakeFirst();
  if (!parent) throw new StoreValidationError(field, `no ${entity} ${id}`);
  if (parent.status === 'archived') throw new StoreValidationError(field, `${entity} ${id} is archived`);
  return parent as { advertiser_id?: string };
}

/** The ad columns serving reads (ServedAdRow). */
const servedAdColumns = [
  'id',
  'campaign_id',
  'advertiser_id',
  'product_id',
  'category',
  'format',
  'title',
  'landing_url',
  'image_url',
  'price_micros',
  'landing_quality',
  'rating',
  'targeting',
  'policy_flags',
  'status',
] as const;

const specs: Record<StoreEntity, EntitySpec> = {
  advertiser: {
    table: 'advertisers',
    json: [],
    immutable: ['id'],
    fields: (input) => advertiserFields(input),
    attach: async () => undefined,
  },
  campaign: {
    table: 'campaigns',
    json: ['frequency_cap', 'day_parting', 'targeting'],
    immutable: ['id', 'advertiser_id'],
    fields: (input, limits) => campaignFields(input, limits),
    attach: async (trx, fields) => {
      await activeParent(trx, 'advertisers', 'advertiser_id', fields.advertiser_id as string);
    },
  },
  ad: {
    table: 'ads',
    json: ['keywords', 'targeting', 'policy_flags'],
    immutable: ['id', 'campaign_id', 'advertiser_id'],
    fields: (input, limits) => adFields(input, limits),
    attach: async (trx, fields) => {
      const campaign = await activeParent(trx, 'campaigns', 'campaign_id', fields.campaign_id as string);
      inheritAdvertiser(fields, campaign.advertiser_id!);
    },
  },
};

/** An ad's advertiser_id is its campaign's, whether or not the body names it, so it is left out of the hash. */
const createBodyHash = (entity: StoreEntity, fields: Fields): string => requestHash(entity === 'ad' ? { ...fields, advertiser_id: undefined } : fields);

type Parents = Map<string, { status: string; advertiser_id?: string }>;

/** Refuses a new row whose parent is missing or archived, and fills an ad's advertiser from its campaign. */
function attachTo(entity: StoreEntity, fields: Fields, parents: Parents): void {
  if (entity === 'advertiser') return;
  const parentField = entity === 'campaign' ? 'advertiser_id' : 'campaign_id';
  const id = fields[parentField] as string;
  const parent = parents.get(id);
  if (!parent) throw new StoreValidationError(parentField, `no ${entity === 'campaign' ? 'advertiser' : 'campaign'} ${id}`);
  if (parent.status === 'archived') throw new StoreValidationError(parentField, `${id} is archived`);
  if (entity === 'ad') inheritAdvertiser(fields, parent.advertiser_id!);
}

function inheritAdvertiser(fields: Fields, advertiserId: string): void {
  if (fields.advertiser_id !== undefined && fields.advertiser_id !== advertiserId) {
    throw new StoreValidationError('advertiser_id', `must be the campaign's advertiser ${advertiserId} (got ${String(fields.advertiser_id)})`);
  }
  fields.advertiser_id = advertiserId;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

function fromDb<E extends StoreEntity>(spec: EntitySpec, row: DbRow): EntityRows[E] {
  const { create_hash: _hash, created_at, updated_at, archived_at, ...rest } = row;
  for (const column of spec.json) if (rest[column] !== null) rest[column] = JSON.parse(rest[column] as string);
  return { ...rest, created_at: iso(created_at), updated_at: iso(updated_at), archived_at: iso(archived_at) } as unknown as EntityRows[E];
}

function toDb(spec: EntitySpec, fields: Fields): Record<string, unknown> {
  const columns: Record<string, unknown> = { ...fields };
  for (const column of spec.json) if (columns[column] !== null) columns[column] = JSON.stringify(columns[column]);
  return columns;
}

function encodeCursor(lastId: string): string {
  return Buffer.from(JSON.stringify({ after: lastId })).toString('base64url');
}

function decodeCursor(cursor: string): string {
  try {
    const { after } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { after: unknown };
    if (typeof after === 'string') return after;
  } catch {
    // Falls through to the refusal below.
  }
  throw new StoreValidationError('cursor', 'is not a cursor this store returned');
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

// PostgreSQL returns int8 (bigint) as text by default; every bigint here (micros, ms, seq) stays below 2^53.
const pgTypes = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** The StoreError `check` throws, or undefined; any other error goes on up. */
function refusal(check: () => void): StoreError | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    if (error instanceof StoreError) return error;
    throw error;
  }
}

/** The inputs that validate, with their create hashes; each refused one gets its error in `outcomes`. */
function validInputs<Row>(
  spec: EntitySpec,
  entity: StoreEntity,
  inputs: readonly unknown[],
  limits: StoreLimits,
  outcomes: Array<BatchOutcome<Row>>,
): Array<{ index: number; fields: Fields; hash: string }> {
  const valid: Array<{ index: number; fields: Fields; hash: string }> = [];
  inputs.forEach((input, index) => {
    let fields: Fields | undefined;
    const refused = refusal(() => void (fields = spec.fields(input, limits)));
    if (refused) outcomes[index] = { ok: false, error: refused };
    else valid.push({ index, fields: fields!, hash: createBodyHash(entity, fields!) });
  });
  return valid;
}

/** The stored rows of the ids `inputs` name, read in batches of 10,000. */
async function storedRows(trx: Trx, spec: EntitySpec, inputs: ReadonlyArray<{ fields: Fields }>): Promise<Map<string, DbRow>> {
  const ids = [...new Set(inputs.flatMap(({ fields }) => (fields.id === undefined ? [] : [fields.id])))];
  const known = new Map<string, DbRow>();
  for (let start = 0; start < ids.length; start += 10_000) {
    const rows = (await trx
      .selectFrom(spec.table)
      .selectAll()
      .where('id', 'in', ids.slice(start, start + 10_000))
      .execute()) as DbRow[];
    for (const row of rows) known.set(row.id, row);
  }
  return known;
}

async function insertChunked(trx: Trx, spec: EntitySpec, rows: DbRow[]): Promise<void> {
  if (rows.length === 0) return;
  // Kept under both dialects' bound-parameter limits (32766 for SQLite, 65535 for PostgreSQL).
  const chunk = Math.max(1, Math.floor(30_000 / Object.keys(rows[0]!).length));
  for (let start = 0; start < rows.length; start += chunk)
    await trx
      .insertInto(spec.table)
      .values(rows.slice(start, start + chunk) as never)
      .execute();
}

export class CatalogStore {
  private constructor(
    readonly dialect: DialectKind,
    private readonly db: Db,
    private readonly signal: ChangeSignal,
    private readonly limits: StoreLimits,
  ) {}

  /** Opens (creating if need be) the database and applies every pending migration. */
  static async open(options: StoreOptions): Promise<CatalogStore> {
    const { location } = options;
    let db: Db;
    let signal: ChangeSignal;
    if (location.kind === 'sqlite') {
      const database = new Database(location.file);
      database.pragma('journal_mode = WAL');
      database.pragma('foreign_keys = ON');
      database.pragma('busy_timeout = 5000');
      db = new Kysely<StoreDatabase>({ dialect: new SqliteDialect({ database }) });
      signal = new LocalSignal();
    } else {
      const pool = new pg.Pool({ connectionString: location.url, max: options.poolSize ?? 4, types: pgTypes });
      pool.on('error', (error) => options.onError?.(error));
      db = new Kysely<StoreDatabase>({ dialect: new PostgresDialect({ pool }) });
      signal = new PostgresSignal({ url: location.url, reconnectDelayMs: options.listenerReconnectMs ?? 100, onError: (error) => options.onError?.(error) });
    }
    const store = new CatalogStore(location.kind, db, signal, options.limits);
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  /** Applies pending migrations, each once, in one transaction under Kysely's migration lock. */
  async migrate(): Promise<string[]> {
    const migrator = new Migrator({
      db: this.db,
      provider: { getMigrations: async () => migrations(this.dialect) },
      migrationTableName: migrationTable,
      migrationLockTableName: migrationLockTable,
    });
    const { error, results } = await migrator.migrateToLatest();
    if (error) throw new StoreError('E_MIGRATION', `catalog migration failed: ${(error as Error).message ?? String(error)}`);
    return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName);
  }

  async close(): Promise<void> {
    await this.signal.close();
    await this.db.destroy();
  }

  createAdvertiser(input: unknown, options?: CreateOptions): Promise<CreateResult<AdvertiserRow>> {
    return this.create('advertiser', input, options);
  }

  createCampaign(input: unknown, options?: CreateOptions): Promise<CreateResult<CampaignRow>> {
    return this.create('campaign', input, options);
  }

  createAd(input: unknown, options?: CreateOptions): Promise<CreateResult<AdRow>> {
    return this.create('ad', input, options);
  }

  async get<E extends StoreEntity>(entity: E, id: string): Promise<EntityRows[E] | undefined> {
    const spec = specs[entity];
    const row = await this.db.selectFrom(spec.table).selectAll().where('id', '=', id).executeTakeFirst();
    return row ? fromDb<E>(spec, row as DbRow) : undefined;
  }

  listAdvertisers(options: ListOptions = {}): Promise<Page<AdvertiserRow>> {
    return this.list('advertiser', {}, options);
  }

  listCampaigns(options: ListOptions & { advertiserId?: string } = {}): Promise<Page<CampaignRow>> {
    return this.list('campaign', { advertiser_id: options.advertiserId }, options);
  }

  listAds(options: ListOptions & { advertiserId?: string; campaignId?: string } = {}): Promise<Page<AdRow>> {
    return this.list('ad', { advertiser_id: options.advertiserId, campaign_id: options.campaignId }, options);
  }

  /**
   * Applies a partial body (null removes an optional field) to the row and validates the result.
   * An update that changes nothing writes nothing and keeps the version.
   */
  async update<E extends StoreEntity>(entity: E, id: string, patch: unknown, options: WriteOptions = {}): Promise<EntityRows[E]> {
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new StoreValidationError('body', 'must be a JSON object');
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.updateOnce(entity, id, patch, options);
      } catch (error) {
        // Without If-Match the caller asked for its patch on whatever is current: apply it again
        // over the row the concurrent writer left.
        if (!(error instanceof StoreVersionConflictError) || options.ifVersion !== undefined || attempt === 5) throw error;
      }
    }
  }

  private async updateOnce<E extends StoreEntity>(entity: E, id: string, patch: object, options: WriteOptions): Promise<EntityRows[E]> {
    const spec = specs[entity];
    return this.write(async (trx, changes) => {
      const row = await this.currentRow(trx, entity, id, options);
      if (row.status === 'archived') throw new StoreArchivedError(entity, id);
      const current = fromDb<E>(spec, row) as unknown as Record<string, unknown>;
      for (const key of spec.immutable) {
        if (key in patch && (patch as Record<string, unknown>)[key] !== current[key]) throw new StoreValidationError(key, 'cannot be changed');
      }
      const fields = spec.fields({ ...withoutMeta(current), ...patch }, this.limits);
      if (entity === 'ad') fields.advertiser_id = current.advertiser_id;
      const columns = toDb(spec, fields);
      const changed = Object.keys(columns).filter((key) => JSON.stringify(columns[key]) !== JSON.stringify(row[key]));
      if (changed.length === 0) return current as unknown as EntityRows[E];
      const now = Date.now();
      const next = { ...columns, version: row.version + 1, updated_at: now };
      await this.conditionalUpdate(trx, entity, row, next);
      changes.push({ entity, id, version: row.version + 1, op: 'update', at: now, fields: changed });
      return fromDb<E>(spec, { ...row, ...next } as DbRow);
    });
  }

  /** Retires a row for good, keeping it (and its history) readable; archiving an archived row changes nothing. */
  async archive<E extends StoreEntity>(entity: E, id: string, options: WriteOptions = {}): Promise<EntityRows[E]> {
    const spec = specs[entity];
    return this.write(async (trx, changes) => {
      const row = await this.currentRow(trx, entity, id, options);
      if (row.status === 'archived') return fromDb<E>(spec, row);
      const now = Date.now();
      const next = { status: 'archived', version: row.version + 1, updated_at: now, archived_at: now };
      await this.conditionalUpdate(trx, entity, row, next);
      changes.push({ entity, id, version: row.version + 1, op: 'archive', at: now, fields: [] });
      return fromDb<E>(spec, { ...row, ...next } as DbRow);
    });
  }

  /** Changes with seq > afterSeq in seq order, at most `limit` (1..10000). */
  async changesSince(afterSeq: number, limit = 1000): Promise<Change[]> {
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new StoreValidationError('seq', 'must be a non-negative integer');
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new StoreValidationError('limit', 'must be an integer in 1..10000');
    const rows = await this.db.selectFrom('changes').selectAll().where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
    return rows.map((row) => ({
      seq: Number(row.seq),
      entity: row.entity as StoreEntity,
      id: row.entity_id,
      version: row.version,
      op: row.op as ChangeOp,
      at: iso(row.at)!,
      fields: row.fields === '' ? [] : row.fields.split(','),
    }));
  }

  /** The seq of the last committed change (0 before any). */
  async currentSeq(): Promise<number> {
    const row = await this.db.selectFrom('change_sequence').select('last_seq').where('id', '=', 1).executeTakeFirstOrThrow();
    return Number(row.last_seq);
  }

  /** Follows the change sequence: catches up from fromSeq, then hears every later commit (any process's, on PostgreSQL). */
  follow(options: FollowOptions): ChangeFollower {
    return new ChangeFollower((afterSeq, limit) => this.changesSince(afterSeq, limit), this.signal, options);
  }

  /** Whether the model directory's catalog still has to be imported (true from creation until seedFromCatalog finishes). */
  async seedPending(): Promise<boolean> {
    const row = await this.db.selectFrom('store_meta').select('value').where('key', '=', 'seed').executeTakeFirst();
    return row?.value === 'pending';
  }

  /**
   * Marks the seed done, noting which catalog it came from and the seq it ended at: a model trained
   * on that catalog then differs from the store only by the changes after that seq.
   */
  async markSeeded(source: { catalogSha256: string }): Promise<void> {
    const seq = String(await this.currentSeq());
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable('store_meta').set({ value: 'done' }).where('key', '=', 'seed').execute();
      for (const [key, value] of [
        ['seed_catalog_sha256', source.catalogSha256],
        ['seed_seq', seq],
      ])
        await trx
          .insertInto('store_meta')
          .values({ key, value })
          .onConflict((conflict) => conflict.column('key').doUpdateSet({ value }))
          .execute();
    });
  }

  /** This database's name (migration 0003): the same for every replica sharing it, different for any other or a restored copy of an older one's. */
  async storeId(): Promise<string> {
    const row = await this.db.selectFrom('store_meta').select('value').where('key', '=', 'store_id').executeTakeFirstOrThrow();
    return row.value;
  }

  /** The catalog the store was seeded from and the seq the seed ended at; undefined before the seed (or for a store seeded by an older version). */
  async seedSource(): Promise<{ catalogSha256: string; seq: number } | undefined> {
    const rows = await this.db.selectFrom('store_meta').select(['key', 'value']).where('key', 'in', ['seed_catalog_sha256', 'seed_seq']).execute();
    const value = (key: string) => rows.find((row) => row.key === key)?.value;
    const catalogSha256 = value('seed_catalog_sha256');
    const seq = value('seed_seq');
    return catalogSha256 === undefined || seq === undefined ? undefined : { catalogSha256, seq: Number(seq) };
  }

  /**
   * Creates many rows of one entity in one transaction, each validated as a create; rows whose id
   * already exists are left as they are (so an interrupted import can be run again). Every input
   * must carry its id. Returns the number of rows inserted.
   */
  async importBatch(entity: StoreEntity, inputs: readonly unknown[]): Promise<number> {
    const spec = specs[entity];
    const fieldsList = inputs.map((input, index) => {
      try {
        const fields = spec.fields(input, this.limits);
        if (fields.id === undefined) throw new StoreValidationError('id', 'is required in an import');
        return fields;
      } catch (error) {
        if (error instanceof StoreValidationError) throw new StoreValidationError(`[${index}].${error.field}`, error.reason);
        throw error;
      }
    });
    if (fieldsList.length === 0) return 0;
    const hashes = fieldsList.map((fields) => createBodyHash(entity, fields));
    return this.write(async (trx, changes) => {
      await this.attachBatch(trx, entity, fieldsList);
      const now = Date.now();
      const rows = fieldsList.map((fields, index) => ({
        ...toDb(spec, fields),
        version: 1,
        create_hash: hashes[index]!,
        created_at: now,
        updated_at: now,
        archived_at: null,
      }));
      // Kept under both dialects' bound-parameter limits (32766 for SQLite, 65535 for PostgreSQL).
      const chunk = Math.max(1, Math.floor(30_000 / Object.keys(rows[0]!).length));
      for (let start = 0; start < rows.length; start += chunk) {
        const inserted = await trx
          .insertInto(spec.table)
          .values(rows.slice(start, start + chunk) as never)
          .onConflict((conflict) => conflict.column('id').doNothing())
          .returning('id')
          .execute();
        for (const { id } of inserted) changes.push({ entity, id, version: 1, op: 'create', at: now, fields: [] });
      }
      return changes.length;
    });
  }

  private async attachBatch(trx: Trx, entity: StoreEntity, fieldsList: Fields[]): Promise<void> {
    const parents = await this.parentsOf(trx, entity, fieldsList);
    fieldsList.forEach((fields, index) => {
      try {
        attachTo(entity, fields, parents);
      } catch (error) {
        if (!(error instanceof StoreValidationError)) throw error;
        throw new StoreValidationError(`[${index}].${error.field}`, error.reason);
      }
    });
  }

  /** The rows the new rows hang under (advertisers of campaigns, campaigns of ads), by id, in chunks under the bound-parameter limits. */
  private async parentsOf(trx: Trx, entity: StoreEntity, fieldsList: readonly Fields[]): Promise<Parents> {
    const parents: Parents = new Map();
    if (entity === 'advertiser') return parents;
    const parentField = entity === 'campaign' ? 'advertiser_id' : 'campaign_id';
    const ids = [...new Set(fieldsList.map((fields) => fields[parentField] as string))];
    for (let start = 0; start < ids.length; start += 10_000) {
      const rows = await trx
        .selectFrom(entity === 'campaign' ? 'advertisers' : 'campaigns')
        .selectAll()
        .where('id', 'in', ids.slice(start, start + 10_000))
        .execute();
      for (const row of rows) parents.set(row.id, row as { status: string; advertiser_id?: string });
    }
    return parents;
  }

  /**
   * Creates each input as `create` would (a client id makes a repeat replay), all in one
   * transaction with a few statements per batch rather than per row; an input the store refuses
   * gets its error in its place and the others are still written. For bulk imports.
   */
  async createMany<E extends StoreEntity>(entity: E, inputs: readonly unknown[]): Promise<Array<BatchOutcome<EntityRows[E]>>> {
    const spec = specs[entity];
    const attempt = () =>
      this.write(async (trx, changes) => {
        const outcomes: Array<BatchOutcome<EntityRows[E]>> = new Array(inputs.length);
        const valid = validInputs(spec, entity, inputs, this.limits, outcomes);
        // Rows already stored, then the ones this batch creates: a repeated id replays or conflicts either way.
        const known = await storedRows(trx, spec, valid);
        const parents = await this.parentsOf(
          trx,
          entity,
          valid.map(({ fields }) => fields),
        );
        const now = Date.now();
        const rows: DbRow[] = [];
        for (const { index, fields, hash } of valid) {
          const earlier = fields.id === undefined ? undefined : known.get(fields.id);
          const refused = refusal(() => {
            if (earlier && earlier.create_hash !== hash) throw new StoreIdempotencyConflictError(`${entity} ${fields.id} already exists with a different body`);
            if (!earlier) attachTo(entity, fields, parents);
          });
          if (refused) outcomes[index] = { ok: false, error: refused };
          else if (earlier) outcomes[index] = { ok: true, row: fromDb<E>(spec, earlier), created: false };
          else {
            const row = {
              ...toDb(spec, fields),
              id: fields.id ?? randomUUID(),
              version: 1,
              create_hash: hash,
              created_at: now,
              updated_at: now,
              archived_at: null,
            } as DbRow;
            rows.push(row);
            known.set(row.id, row);
            changes.push({ entity, id: row.id, version: 1, op: 'create', at: now, fields: [] });
            outcomes[index] = { ok: true, row: fromDb<E>(spec, row), created: true };
          }
        }
        await insertChunked(trx, spec, rows);
        return outcomes;
      });
    try {
      return await attempt();
    } catch (error) {
      // A concurrent writer created one of these ids first: the retry replays it (or reports the conflict).
      if (isUniqueViolation(error)) return attempt();
      throw error;
    }
  }

  private async create<E extends StoreEntity>(entity: E, input: unknown, options: CreateOptions = {}): Promise<CreateResult<EntityRows[E]>> {
    const spec = specs[entity];
    const { idempotencyKey } = options;
    if (idempotencyKey !== undefined && (typeof idempotencyKey !== 'string' || idempotencyKey.length === 0 || idempotencyKey.length > maxIdempotencyKey)) {
      throw new StoreValidationError('idempotency_key', `must be 1-${maxIdempotencyKey} characters`);
    }
    const fields = spec.fields(input, this.limits);
    const hash = createBodyHash(entity, fields);
    const attempt = () =>
      this.write(async (trx, changes): Promise<CreateResult<EntityRows[E]>> => {
        if (idempotencyKey !== undefined) {
          const earlier = await trx
            .selectFrom('idempotency_keys')
            .selectAll()
            .where('entity', '=', entity)
            .where('key', '=', idempotencyKey)
            .executeTakeFirst();
          if (earlier) {
            if (earlier.request_hash !== hash)
              throw new StoreIdempotencyConflictError(`idempotency key ${JSON.stringify(idempotencyKey)} was used with a different ${entity} body`);
            const row = await trx.selectFrom(spec.table).selectAll().where('id', '=', earlier.entity_id).executeTakeFirstOrThrow();
            return { row: fromDb<E>(spec, row as DbRow), created: false };
          }
        }
        if (fields.id !== undefined) {
          const existing = await trx.selectFrom(spec.table).selectAll().where('id', '=', fields.id).executeTakeFirst();
          if (existing) {
            if (existing.create_hash !== hash) throw new StoreIdempotencyConflictError(`${entity} ${fields.id} already exists with a different body`);
            return { row: fromDb<E>(spec, existing as DbRow), created: false };
          }
        }
        await spec.attach(trx, fields);
        const id = fields.id ?? randomUUID();
        const now = Date.now();
        const row = { ...toDb(spec, fields), id, version: 1, create_hash: hash, created_at: now, updated_at: now, archived_at: null };
        await trx
          .insertInto(spec.table)
          .values(row as never)
          .execute();
        if (idempotencyKey !== undefined) {
          await trx.insertInto('idempotency_keys').values({ entity, key: idempotencyKey, request_hash: hash, entity_id: id, created_at: now }).execute();
        }
        changes.push({ entity, id, version: 1, op: 'create', at: now, fields: [] });
        return { row: fromDb<E>(spec, row as DbRow), created: true };
      });
    try {
      return await attempt();
    } catch (error) {
      // A concurrent create with the same id or key committed first: the retry sees its row.
      if (isUniqueViolation(error)) return attempt();
      throw error;
    }
  }

  private async list<E extends StoreEntity>(entity: E, filters: Record<string, string | undefined>, options: ListOptions): Promise<Page<EntityRows[E]>> {
    const spec = specs[entity];
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > maxPage) throw new StoreValidationError('limit', `must be an integer in 1..${maxPage}`);
    if (options.status !== undefined && !['active', 'paused', 'archived'].includes(options.status))
      throw new StoreValidationError('status', 'must be one of active, paused, archived');
    const rows = await this.rowsAfter(
      entity,
      { ...filters, status: options.status },
      options.cursor === undefined ? undefined : decodeCursor(options.cursor),
      limit + 1,
    );
    const items = rows.slice(0, limit).map((row) => fromDb<E>(spec, row));
    return { items, next_cursor: rows.length > limit ? encodeCursor(rows[limit - 1]!.id) : null };
  }

  /**
   * Every row of an entity in id order, a page of `pageSize` at a time (pages larger than a list's,
   * for a serving model reading the whole catalog at load).
   */
  async *scan<E extends StoreEntity>(entity: E, pageSize = 5000): AsyncGenerator<Array<EntityRows[E]>> {
    const spec = specs[entity];
    let after: string | undefined;
    for (;;) {
      const rows = await this.rowsAfter(entity, {}, after, pageSize);
      if (rows.length === 0) return;
      after = rows[rows.length - 1]!.id;
      yield rows.map((row) => fromDb<E>(spec, row));
      if (rows.length < pageSize) return;
    }
  }

  /**
   * Every ad in id order, a page at a time, with only the columns serving reads (not keywords or
   * bookkeeping): a whole read of a large catalog costs per value made (better-sqlite3, pg).
   */
  async *scanServedAds(pageSize = 5000): AsyncGenerator<ServedAdRow[]> {
    let after: string | undefined;
    for (;;) {
      let query = this.db.selectFrom('ads').select(servedAdColumns);
      if (after !== undefined) query = query.where('id', '>', after);
      const rows = (await query.orderBy('id').limit(pageSize).execute()) as unknown as Array<Record<(typeof servedAdColumns)[number], unknown>>;
      if (rows.length === 0) return;
      after = rows[rows.length - 1]!.id as string;
      yield rows.map(
        (row) =>
          ({
            ...row,
            targeting: row.targeting === null ? null : JSON.parse(row.targeting as string),
            policy_flags: row.policy_flags === '[]' ? [] : JSON.parse(row.policy_flags as string),
          }) as ServedAdRow,
      );
      if (rows.length < pageSize) return;
    }
  }

  private async rowsAfter(entity: StoreEntity, filters: Record<string, string | undefined>, afterId: string | undefined, limit: number): Promise<DbRow[]> {
    let query = this.db.selectFrom(specs[entity].table).selectAll();
    for (const [column, value] of Object.entries(filters)) if (value !== undefined) query = query.where(column as 'id', '=', value);
    if (afterId !== undefined) query = query.where('id', '>', afterId);
    return (await query.orderBy('id').limit(limit).execute()) as DbRow[];
  }

  private async currentRow(trx: Trx, entity: StoreEntity, id: string, options: WriteOptions): Promise<DbRow> {
    const row = (await trx.selectFrom(specs[entity].table).selectAll().where('id', '=', id).executeTakeFirst()) as DbRow | undefined;
    if (!row) throw new StoreNotFoundError(entity, id);
    if (options.ifVersion !== undefined && options.ifVersion !== row.version) throw new StoreVersionConflictError(entity, id, options.ifVersion, row.version);
    return row;
  }

  /** Writes `next` only if the row is still at the version read, so a concurrent writer's update is never lost. */
  private async conditionalUpdate(trx: Trx, entity: StoreEntity, row: DbRow, next: Record<string, unknown>): Promise<void> {
    const result = await trx
      .updateTable(specs[entity].table)
      .set(next as never)
      .where('id', '=', row.id)
      .where('version', '=', row.version)
      .executeTakeFirst();
    if (result.numUpdatedRows === 0n) {
      const current = await trx.selectFrom(specs[entity].table).select('version').where('id', '=', row.id).executeTakeFirstOrThrow();
      throw new StoreVersionConflictError(entity, row.id, row.version, current.version);
    }
  }

  /**
   * Runs `work` in a transaction and appends the changes it collects to the sequence before commit.
   * The sequence row's lock is taken last, so writers queue on it only for the end of their
   * transaction, and seqs are handed out in commit order.
   */
  private async write<T>(work: (trx: Trx, changes: PendingChange[]) => Promise<T>): Promise<T> {
    let appended = false;
    const result = await this.db.transaction().execute(async (trx) => {
      const changes: PendingChange[] = [];
      const value = await work(trx, changes);
      if (changes.length === 0) return value;
      const { last_seq: lastSeq } = await trx
        .updateTable('change_sequence')
        .set((eb) => ({ last_seq: eb('last_seq', '+', changes.length) }))
        .where('id', '=', 1)
        .returning('last_seq')
        .executeTakeFirstOrThrow();
      const first = Number(lastSeq) - changes.length + 1;
      const rows = changes.map((change, index) => ({
        seq: first + index,
        entity: change.entity,
        entity_id: change.id,
        version: change.version,
        op: change.op,
        at: change.at,
        fields: change.fields.join(','),
      }));
      // 7 columns a row: 4,000 rows stay under SQLite's 32,766 bound parameters.
      for (let start = 0; start < rows.length; start += 4000)
        await trx
          .insertInto('changes')
          .values(rows.slice(start, start + 4000))
          .execute();
      // Delivered by PostgreSQL when (and only if) the transaction commits.
      if (this.dialect === 'postgres') await sql`select pg_notify(${notifyChannel}, ${String(lastSeq)})`.execute(trx);
      appended = true;
      return value;
    });
    if (appended && this.signal instanceof LocalSignal) this.signal.notify();
    return result;
  }
}

function withoutMeta(row: Record<string, unknown>): Record<string, unknown> {
  const { version: _v, created_at: _c, updated_at: _u, archived_at: _a, ...rest } = row;
  return rest;
}
