// The admin catalog API over the catalog store, through the real daemon: the same flow on its
// default SQLite file and on a real PostgreSQL (DATABASE_URL), then bulk import and export, and
// the admin API on a listener of its own.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { ad, advertiser, campaign } from '../helpers/catalog_store';
import { adminToken, baseEnv } from '../helpers/events';
import { type PostgresServer, startPostgres } from '../helpers/postgres';
import { freePort } from '../helpers/redis';

interface Answer {
  status: number;
  etag: string | null;
  json: Record<string, unknown> & { error?: { code: string; message: string; field?: string } };
}

async function call(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, etag: response.headers.get('etag'), json: (await response.json()) as Answer['json'] };
}

const jsonLines = (text: string): Array<Record<string, unknown>> =>
  text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

async function importLines(url: string, lines: string[]): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${url}/v1/admin/catalog/import`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/x-ndjson' },
    body: lines.join('\n'),
  });
  expect(response.status).toBe(200);
  return jsonLines(await response.text());
}

async function exportLines(url: string): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${url}/v1/admin/catalog/export`, { headers: { authorization: `Bearer ${adminToken}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/x-ndjson');
  return jsonLines(await response.text());
}

/** Create, read, list, edit and archive through HTTP; the same on every backend. */
async function crudFlow(url: string): Promise<void> {
  const base = '/v1/admin/catalog';
  // The store was seeded from the tiny model's catalog on first start.
  expect((await call(url, 'GET', `${base}/campaigns/c000000`)).json).toMatchObject({ id: 'c000000', advertiser_id: 'adv00000', version: 1 });

  // Idempotent creates: a client id or an Idempotency-Key replays the first answer; a different body conflicts.
  const created = await call(url, 'POST', `${base}/advertisers`, advertiser('acme'));
  expect(created).toMatchObject({ status: 201, etag: '"1"', json: { id: 'acme', status: 'active', version: 1 } });
  expect(await call(url, 'POST', `${base}/advertisers`, advertiser('acme'))).toEqual({ ...created, status: 200 });
  expect(await call(url, 'POST', `${base}/advertisers`, { ...advertiser('acme'), name: 'Other' })).toMatchObject({
    status: 409,
    json: { error: { code: 'idempotency_conflict' } },
  });
  const keyed = await call(url, 'POST', `${base}/advertisers`, { name: 'No id' }, { 'idempotency-key': 'k-1' });
  expect(keyed.status).toBe(201);
  expect(await call(url, 'POST', `${base}/advertisers`, { name: 'No id' }, { 'idempotency-key': 'k-1' })).toEqual({ ...keyed, status: 200 });
  expect((await call(url, 'POST', `${base}/advertisers`, { name: 'Changed' }, { 'idempotency-key': 'k-1' })).status).toBe(409);

  // Validation: 422 naming the field, nothing written.
  const invalid = await call(url, 'POST', `${base}/campaigns`, { ...campaign('bad', 'acme'), bid_micros: -1 });
  expect(invalid).toMatchObject({ status: 422, json: { error: { code: 'invalid_request', field: 'bid_micros' } } });
  expect((await call(url, 'POST', `${base}/campaigns`, { ...campaign('bad', 'acme'), targeting: [[{ type: 'nope', value: 'x' }]] })).json.error?.field).toBe(
    'targeting[0][0].type',
  );
  expect((await call(url, 'POST', `${base}/campaigns`, campaign('bad', 'nobody'))).json.error?.field).toBe('advertiser_id');
  expect((await call(url, 'GET', `${base}/campaigns/bad`)).status).toBe(404);

  expect((await call(url, 'POST', `${base}/campaigns`, campaign('spring', 'acme'))).status).toBe(201);
  for (const id of ['ad-a', 'ad-b', 'ad-c'])
    expect((await call(url, 'POST', `${base}/ads`, ad(id, 'spring'))).json).toMatchObject({ id, advertiser_id: 'acme', campaign_id: 'spring' });

  // Cursor pagination over a filtered list.
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await call(url, 'GET', `${base}/ads?campaign_id=spring&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    expect(page.status).toBe(200);
    expect((page.json.items as unknown[]).length).toBeLessThanOrEqual(2);
    seen.push(...(page.json.items as Array<{ id: string }>).map((item) => item.id));
    cursor = page.json.next_cursor as string | null;
  } while (cursor !== null);
  expect(seen).toEqual(['ad-a', 'ad-b', 'ad-c']);
  expect((await call(url, 'GET', `${base}/campaigns?advertiser_id=acme`)).json.items).toMatchObject([{ id: 'spring' }]);
  expect((await call(url, 'GET', `${base}/ads?colour=red`)).json.error).toMatchObject({ code: 'invalid_request', field: 'colour' });
  expect((await call(url, 'GET', `${base}/ads?limit=0`)).json.error?.field).toBe('limit');

  // Optimistic concurrency: the ETag is the version; a stale If-Match is refused with 412.
  const shown = await call(url, 'GET', `${base}/campaigns/spring`);
  expect(shown.etag).toBe('"1"');
  const edited = await call(url, 'PATCH', `${base}/campaigns/spring`, { bid_micros: 600_000 }, { 'if-match': shown.etag! });
  expect(edited).toMatchObject({ status: 200, etag: '"2"', json: { bid_micros: 600_000, version: 2 } });
  const stale = await call(url, 'PATCH', `${base}/campaigns/spring`, { bid_micros: 700_000 }, { 'if-match': shown.etag! });
  expect(stale).toMatchObject({ status: 412, json: { error: { code: 'version_conflict' } } });
  // Without If-Match the edit applies over the current version.
  expect((await call(url, 'PATCH', `${base}/campaigns/spring`, { pacing: 'asap' })).json).toMatchObject({ bid_micros: 600_000, pacing: 'asap', version: 3 });
  expect((await call(url, 'PATCH', `${base}/campaigns/spring`, { daily_budget_micros: 1.5 })).json.error?.field).toBe('daily_budget_micros');

  // Archive: the row stays readable, takes no more edits, and nothing new hangs under it.
  const archived = await call(url, 'DELETE', `${base}/ads/ad-c`);
  expect(archived).toMatchObject({ status: 200, json: { id: 'ad-c', status: 'archived', version: 2 } });
  expect(archived.json.archived_at).toEqual(expect.any(String));
  expect((await call(url, 'GET', `${base}/ads/ad-c`)).json).toMatchObject({ status: 'archived', title: ad('ad-c').title });
  expect((await call(url, 'PATCH', `${base}/ads/ad-c`, { title: 'Back' })).json.error?.code).toBe('archived');
  expect((await call(url, 'GET', `${base}/ads?campaign_id=spring&status=archived`)).json.items).toMatchObject([{ id: 'ad-c' }]);
  expect((await call(url, 'DELETE', `${base}/campaigns/spring`)).status).toBe(200);
  expect((await call(url, 'POST', `${base}/ads`, ad('ad-d', 'spring'))).json.error).toMatchObject({ code: 'invalid_request', field: 'campaign_id' });
}

describe('catalog API on SQLite (the default)', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon(baseEnv);
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('creates, reads, lists, edits and archives advertisers, campaigns and ads', async () => {
    expect(daemon.output()).toMatch(/"msg":"catalog store seeded","advertisers":30,"campaigns":90,"ads":400/);
    await crudFlow(daemon.url);
  });

  it('imports JSON lines, reporting a bad line by number and keeping the good ones', async () => {
    const lines = [
      JSON.stringify({ kind: 'advertiser', ...advertiser('bulk') }),
      JSON.stringify({ kind: 'campaign', ...campaign('bulk-c', 'bulk') }),
      JSON.stringify({ kind: 'ad', ...ad('bulk-1', 'bulk-c') }),
      JSON.stringify({ kind: 'ad', ...ad('bulk-2', 'bulk-c'), price_micros: -3 }),
      '{"kind": "ad", "id": ',
      '',
      JSON.stringify({ kind: 'flight', id: 'x' }),
      JSON.stringify({ kind: 'ad', ...ad('bulk-3', 'bulk-c') }),
    ];
    const report = await importLines(daemon.url, lines);
    expect(report).toEqual([
      { line: 1, ok: true, kind: 'advertiser', id: 'bulk', created: true },
      { line: 2, ok: true, kind: 'campaign', id: 'bulk-c', created: true },
      { line: 3, ok: true, kind: 'ad', id: 'bulk-1', created: true },
      {
        line: 4,
        ok: false,
        kind: 'ad',
        id: 'bulk-2',
        status: 422,
        code: 'invalid_request',
        field: 'price_micros',
        message: expect.stringMatching(/^price_micros: /),
      },
      { line: 5, ok: false, status: 400, code: 'bad_request', message: 'line is not valid JSON' },
      { line: 7, ok: false, status: 422, code: 'invalid_request', field: 'kind', message: 'kind must be one of advertiser, campaign, ad' },
      { line: 8, ok: true, kind: 'ad', id: 'bulk-3', created: true },
      { summary: { lines: 7, created: 4, unchanged: 0, failed: 3 } },
    ]);
    expect((await call(daemon.url, 'GET', '/v1/admin/catalog/ads?campaign_id=bulk-c')).json.items).toMatchObject([{ id: 'bulk-1' }, { id: 'bulk-3' }]);
    // Sent again, the good lines replay: nothing is written twice.
    expect((await importLines(daemon.url, lines)).at(-1)).toEqual({ summary: { lines: 7, created: 0, unchanged: 4, failed: 3 } });
  });

  it('exports every row, archived ones included, and an export imports into a fresh store as it was', async () => {
    const exported = await exportLines(daemon.url);
    expect(exported.filter((row) => row.kind === 'ad').length).toBeGreaterThanOrEqual(400);
    expect(exported.find((row) => row.id === 'ad-c')).toMatchObject({ kind: 'ad', status: 'archived' });
    const fresh = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: '/nonexistent/model' });
    try {
      const report = await importLines(
        fresh.url,
        exported.map((row) => JSON.stringify(row)),
      );
      expect(report.at(-1)).toEqual({ summary: { lines: exported.length, created: exported.length, unchanged: 0, failed: 0 } });
      const reexported = await exportLines(fresh.url);
      // Versions and times are the new store's own; everything else must survive the trip.
      const withoutTimes = (rows: Array<Record<string, unknown>>) =>
        rows.map((row) =>
          Object.fromEntries(
            Object.entries(row).map(([key, value]) => [key, ['version', 'created_at', 'updated_at', 'archived_at'].includes(key) ? typeof value : value]),
          ),
        );
      expect(withoutTimes(reexported)).toEqual(withoutTimes(exported));
    } finally {
      await fresh.stop();
    }
  });

  it('keeps the store across a restart, without seeding it again', async () => {
    expect(await daemon.stop()).toBe(0);
    daemon = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: daemon.dataDir });
    expect(daemon.output()).not.toMatch(/"msg":"catalog store seeded"/);
    expect((await call(daemon.url, 'GET', '/v1/admin/catalog/ads/ad-c')).json).toMatchObject({ status: 'archived', version: 2 });
    expect((await call(daemon.url, 'GET', '/v1/admin/catalog/campaigns/c000000')).json).toMatchObject({ version: 1 });
  });

  it('refuses an import over maxImportBytes with 413, keeping the lines before the limit', async () => {
    const limited = await startDaemon({ ...baseEnv, ADSERVE_MODEL_DIR: '/nonexistent/model', ADSERVE_MAX_IMPORT_BYTES: '100000' });
    try {
      const lines = [
        JSON.stringify({ kind: 'advertiser', ...advertiser('big') }),
        ...Array.from({ length: 2000 }, (_, i) => JSON.stringify({ kind: 'advertiser', ...advertiser(`big-${i}`) })),
      ];
      const body = `${lines.join('\n')}\n`;
      const headers = { authorization: `Bearer ${adminToken}` };
      // Declared too large: refused before any line is read.
      expect((await fetch(`${limited.url}/v1/admin/catalog/import`, { method: 'POST', headers, body })).status).toBe(413);
      expect((await call(limited.url, 'GET', '/v1/admin/catalog/advertisers/big')).status).toBe(404);
      // Chunked, without a Content-Length: the lines received before the limit are written.
      const chunks = [body.slice(0, 60_000), body.slice(60_000)];
      const stream = new ReadableStream({
        pull(controller) {
          const chunk = chunks.shift();
          if (chunk === undefined) controller.close();
          else controller.enqueue(new TextEncoder().encode(chunk));
        },
      });
      const response = await fetch(`${limited.url}/v1/admin/catalog/import`, { method: 'POST', headers, body: stream, duplex: 'half' } as RequestInit);
      expect(response.status).toBe(413);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/maxImportBytes/);
      expect((await call(limited.url, 'GET', '/v1/admin/catalog/advertisers/big')).status).toBe(200);
      expect((await call(limited.url, 'GET', '/v1/admin/catalog/advertisers/big-1999')).status).toBe(404);
    } finally {
      await limited.stop();
    }
  });
});

describe('catalog API on PostgreSQL (DATABASE_URL)', () => {
  let postgres: PostgresServer;
  let databaseUrl: string;
  let daemon: Daemon;
  beforeAll(async () => {
    postgres = await startPostgres();
    databaseUrl = await postgres.createDatabase();
    daemon = await startDaemon({ ...baseEnv, DATABASE_URL: databaseUrl });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    await postgres.stop();
  });

  async function query<Row>(text: string): Promise<Row[]> {
    const client = new pg.Client(databaseUrl);
    await client.connect();
    try {
      return (await client.query(text)).rows as Row[];
    } finally {
      await client.end();
    }
  }

  it('creates, reads, lists, edits and archives advertisers, campaigns and ads', async () => {
    await crudFlow(daemon.url);
  });

  it('keeps every write in the database, with its history in the change sequence', async () => {
    const [row] = await query<{ status: string; version: number }>(`SELECT status, version FROM ads WHERE id = 'ad-c'`);
    expect(row).toEqual({ status: 'archived', version: 2 });
    const changes = await query<{ op: string; version: number }>(`SELECT op, version FROM changes WHERE entity_id = 'ad-c' ORDER BY seq`);
    expect(changes).toEqual([
      { op: 'create', version: 1 },
      { op: 'archive', version: 2 },
    ]);
  });
});

describe('admin API on its own port', () => {
  let daemon: Daemon;
  let adminUrl: string;
  beforeAll(async () => {
    const adminPort = await freePort();
    adminUrl = `http://127.0.0.1:${adminPort}`;
    daemon = await startDaemon({ ...baseEnv, ADSERVE_ADMIN_PORT: String(adminPort) });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('serves admin routes there, still behind the token, and 404s them on the ad port', async () => {
    expect((await call(adminUrl, 'GET', '/v1/admin/catalog/advertisers/adv00000')).status).toBe(200);
    expect((await call(adminUrl, 'GET', '/v1/admin/campaigns/c000000')).status).toBe(200);
    expect((await fetch(`${adminUrl}/v1/admin/catalog/advertisers/adv00000`)).status).toBe(401);
    expect((await fetch(`${adminUrl}/v1/admin/spend`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    for (const path of ['/v1/admin/catalog/advertisers/adv00000', '/v1/admin/spend', '/v1/admin/campaigns']) {
      expect(await call(daemon.url, 'GET', path)).toMatchObject({ status: 404, json: { error: { code: 'not_found' } } });
    }
    // Ad traffic stays on the ad port, and the admin port serves nothing else.
    expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${adminUrl}/healthz`)).status).toBe(404);
  });
});
