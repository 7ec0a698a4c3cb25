// Serving follows the catalog store: an advertiser, campaign and ad created through the admin API
// win an auction within a second, on one node (SQLite) and on three replicas sharing PostgreSQL;
// pausing, archiving, re-titling, flights and the advertiser's status take effect as fast; the ad
// bills, and it still serves after a restart and after a model swap.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { titleBuckets } from '../../src/engine/ad_features';
import { type Manifest, rehashManifestFile } from '../../src/engine/model_dir';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ad, advertiser, campaign } from '../helpers/catalog_store';
import { adminToken, baseEnv, send, spend, tinyModelWithCatalog } from '../helpers/events';
import { copyOfTinyModel } from '../helpers/models';
import { type PostgresServer, startPostgres } from '../helpers/postgres';
import { postAd } from '../helpers/requests';

const query = 'zebra quartz sneakers';

async function admin(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

interface Winner {
  adId: string;
  title: string;
  token: string;
}

async function winners(url: string, tag: string): Promise<Winner[]> {
  const response = decodeAdResponse(new Uint8Array(await (await postAd(url, encodeAdRequest({ id: tag, query, slots: 3, country: 'US' }))).arrayBuffer()));
  return Array.from({ length: response.adsLength() }, (_, slot) => {
    const winner = response.ads(slot)!;
    return { adId: winner.adId()!, title: winner.creative()!.title()!, token: winner.eventToken()! };
  });
}

/** Milliseconds until `check` holds for url's answers (polling), failing after `limitMs`. */
async function within(url: string, limitMs: number, check: (answer: Winner[]) => boolean): Promise<number> {
  const started = performance.now();
  for (let i = 0; ; i++) {
    if (check(await winners(url, `poll-${i}-${Math.random()}`))) return performance.now() - started;
    if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const wins = (id: string) => (answer: Winner[]) => answer.some((winner) => winner.adId === id);
const loses = (id: string) => (answer: Winner[]) => !answer.some((winner) => winner.adId === id);

/** A campaign outbidding the whole tiny catalog, with an ad only `query` matches exactly. */
const liveCampaign = (id: string, advertiserId: string, extra: Record<string, unknown> = {}) => ({
  ...campaign(id, advertiserId),
  bid_micros: 50_000_000,
  frequency_cap: null,
  time_zone: 'UTC',
  flight_start: null,
  flight_end: null,
  targeting: null,
  ...extra,
});
const liveAd = (id: string, campaignId: string, extra: Record<string, unknown> = {}) => ({
  ...ad(id, campaignId),
  title: `Zebra quartz sneakers ${id}`,
  targeting: [[{ type: 'exact', value: query }]],
  ...extra,
});

async function createLive(url: string, tag: string): Promise<void> {
  expect((await admin(url, 'POST', '/v1/admin/catalog/advertisers', advertiser(`adv-${tag}`))).status).toBe(201);
  expect((await admin(url, 'POST', '/v1/admin/catalog/campaigns', liveCampaign(`camp-${tag}`, `adv-${tag}`))).status).toBe(201);
  expect((await admin(url, 'POST', '/v1/admin/catalog/ads', liveAd(`ad-${tag}`, `camp-${tag}`))).status).toBe(201);
}

describe('one node on SQLite', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    // Few ANN candidates, so a created ad reaches the auction by its exact keyword, as in a large
    // catalog, not because retrieval returns the whole tiny one.
    daemon = await startDaemon({ ...baseEnv, ADSERVE_ANN_CANDIDATES: '16', ADSERVE_SCORE_CANDIDATES: '16' });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('serves a created ad within a second, and bills its click', async () => {
    expect(await winners(daemon.url, 'before')).not.toContainEqual(expect.objectContaining({ adId: 'ad-one' }));
    await createLive(daemon.url, 'one');
    expect(await within(daemon.url, 1000, wins('ad-one'))).toBeLessThan(1000);
    const served = (await winners(daemon.url, 'bill')).find((winner) => winner.adId === 'ad-one')!;
    expect((await send(daemon.url, { event_id: 'one-imp', type: 'impression', token: served.token })).status).toBe(200);
    const click = await send(daemon.url, { event_id: 'one-click', type: 'click', token: served.token });
    expect(click.status).toBe(200);
    expect(((await click.json()) as { chargedMicros: number }).chargedMicros).toBeGreaterThan(0);
    expect((await spend(daemon.url)).campaigns['camp-one']?.lifetimeMicros).toBeGreaterThan(0);
  });

  it('takes a paused or archived ad out at once, and re-embeds a changed one', async () => {
    const base = '/v1/admin/catalog/ads/ad-one';
    expect((await admin(daemon.url, 'PATCH', base, { status: 'paused' })).status).toBe(200);
    await within(daemon.url, 1000, loses('ad-one'));
    expect((await admin(daemon.url, 'PATCH', base, { status: 'active', title: 'Zebra quartz sneakers, new season' })).status).toBe(200);
    await within(daemon.url, 1000, (answer) => answer.some((winner) => winner.adId === 'ad-one' && winner.title === 'Zebra quartz sneakers, new season'));
    // Re-targeted away from the query: it stops winning it.
    expect((await admin(daemon.url, 'PATCH', base, { targeting: [[{ type: 'exact', value: 'something else entirely' }]] })).status).toBe(200);
    await within(daemon.url, 1000, loses('ad-one'));
    expect((await admin(daemon.url, 'PATCH', base, { targeting: [[{ type: 'exact', value: query }]] })).status).toBe(200);
    await within(daemon.url, 1000, wins('ad-one'));
    expect((await admin(daemon.url, 'DELETE', base)).status).toBe(200);
    await within(daemon.url, 1000, loses('ad-one'));
  });

  it('leaves out an ad the engine refuses without holding back the changes after it', async () => {
    const billboard = [[{ type: 'placement', value: 'billboard' }]];
    // The API refuses a placement no engine knows...
    const refusedByApi = await admin(daemon.url, 'POST', '/v1/admin/catalog/ads', liveAd('ad-refused', 'camp-one', { targeting: billboard }));
    expect(refusedByApi).toMatchObject({ status: 422, json: { error: { field: 'targeting[0][0].value' } } });
    // ...but a row an older version wrote (here: straight into the database, with its change) still reaches the engine, which refuses it.
    expect((await admin(daemon.url, 'POST', '/v1/admin/catalog/ads', liveAd('ad-refused', 'camp-one'))).status).toBe(201);
    const database = new Database(path.join(daemon.dataDir, 'catalog.sqlite'));
    try {
      database.transaction(() => {
        const seq = (database.prepare('update change_sequence set last_seq = last_seq + 1 where id = 1 returning last_seq').get() as { last_seq: number })
          .last_seq;
        database.prepare('update ads set targeting = ?, version = version + 1 where id = ?').run(JSON.stringify(billboard), 'ad-refused');
        database
          .prepare("insert into changes (seq, entity, entity_id, version, op, at, fields) values (?, 'ad', 'ad-refused', 2, 'update', ?, 'targeting')")
          .run(seq, Date.now());
      })();
    } finally {
      database.close();
    }
    expect((await admin(daemon.url, 'POST', '/v1/admin/catalog/ads', liveAd('ad-after', 'camp-one'))).status).toBe(201);
    await within(daemon.url, 1000, wins('ad-after'));
    expect(daemon.output()).toMatch(/"msg":"ad not served: the engine refused it","ad":"ad-refused"/);
  });

  it('follows campaign flights, campaign targeting and the advertiser status', async () => {
    await createLive(daemon.url, 'two');
    await within(daemon.url, 1000, wins('ad-two'));
    const campaignPath = '/v1/admin/catalog/campaigns/camp-two';
    expect((await admin(daemon.url, 'PATCH', campaignPath, { flight_start: '2099-01-01T00:00' })).status).toBe(200);
    await within(daemon.url, 1000, loses('ad-two'));
    const startsSoon = new Date(Date.now() + 1500).toISOString().slice(0, 19);
    expect((await admin(daemon.url, 'PATCH', campaignPath, { flight_start: startsSoon })).status).toBe(200);
    expect(await winners(daemon.url, 'not-yet')).not.toContainEqual(expect.objectContaining({ adId: 'ad-two' }));
    await within(daemon.url, 4000, wins('ad-two'));
    // Campaign targeting applies on top of the ad's: a country the requests do not come from.
    expect((await admin(daemon.url, 'PATCH', campaignPath, { targeting: [[{ type: 'geo', value: 'JP' }]] })).status).toBe(200);
    await within(daemon.url, 1000, loses('ad-two'));
    expect((await admin(daemon.url, 'PATCH', campaignPath, { targeting: [[{ type: 'geo', value: 'US' }]] })).status).toBe(200);
    await within(daemon.url, 1000, wins('ad-two'));
    expect((await admin(daemon.url, 'PATCH', '/v1/admin/catalog/advertisers/adv-two', { status: 'paused' })).status).toBe(200);
    await within(daemon.url, 1000, loses('ad-two'));
    expect((await admin(daemon.url, 'PATCH', '/v1/admin/catalog/advertisers/adv-two', { status: 'active' })).status).toBe(200);
    await within(daemon.url, 1000, wins('ad-two'));
  });

  it('still serves created ads after a restart and after a model swap', async () => {
    expect(await daemon.stop()).toBe(0);
    daemon = await startDaemon({ ...baseEnv, ADSERVE_ANN_CANDIDATES: '16', ADSERVE_SCORE_CANDIDATES: '16', ADSERVE_DATA_DIR: daemon.dataDir });
    expect(await winners(daemon.url, 'restarted')).toContainEqual(expect.objectContaining({ adId: 'ad-two' }));
    expect(await winners(daemon.url, 'restarted-2')).not.toContainEqual(expect.objectContaining({ adId: 'ad-one' }));
    const swap = await admin(daemon.url, 'POST', '/v1/admin/models', { dir: copyOfTinyModel('swap') });
    expect(swap.status).toBe(200);
    expect(await winners(daemon.url, 'swapped')).toContainEqual(expect.objectContaining({ adId: 'ad-two' }));
    // A model trained on another catalog (one ad retitled there, in its catalog and in the title
    // features it was trained with) is reconciled row by row: the store's ads it lacks are
    // embedded, and the ad it was trained on differently is embedded as the store has it.
    const retitled = 'Retitled in the model only';
    const other = tinyModelWithCatalog((catalog) => {
      catalog.ads[0]!.title = retitled;
    });
    retrainedTitle(other, 0, retitled);
    const before = daemon.output().length;
    expect((await admin(daemon.url, 'POST', '/v1/admin/models', { dir: other })).status).toBe(200);
    expect(await winners(daemon.url, 'other-catalog')).toContainEqual(expect.objectContaining({ adId: 'ad-two' }));
    const embedded = [
      ...daemon
        .output()
        .slice(before)
        .matchAll(/"msg":"ads embedded","model":"[^"]+","ads":(\d+)/g),
    ].map((match) => Number(match[1]));
    // ad-two and ad-after (the store's own) and ad00000000 (retitled there); ad-refused stays out.
    expect(embedded.reduce((sum, ads) => sum + ads, 0)).toBe(3);
  });
});

/** Rewrites row `row` of a model directory's title features as if it had been trained with `title`. */
function retrainedTitle(dir: string, row: number, title: string): void {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const { buckets, max_tokens: maxTokens } = manifest.features.hashing.title;
  const file = path.join(dir, 'ad_title.i64');
  const titles = readFileSync(file);
  titleBuckets(title, buckets, maxTokens).forEach((bucket, token) => titles.writeBigInt64LE(BigInt(bucket), (row * maxTokens + token) * 8));
  writeFileSync(file, titles);
  rehashManifestFile(dir, 'ad_title.i64');
}

describe('edits recorded by an older daemon in catalog-changes.json', () => {
  it('are moved into the store at start, so every replica serves by them', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-legacy-'));
    writeFileSync(
      path.join(dataDir, 'catalog-changes.json'),
      JSON.stringify({ campaigns: { c000001: { status: 'paused', bid_micros: 700_000 }, nope: { status: 'paused' } }, ads: { ad00000000: 'paused' } }),
    );
    const daemon = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: dataDir });
    try {
      expect((await admin(daemon.url, 'GET', '/v1/admin/catalog/campaigns/c000001')).json).toMatchObject({ status: 'paused', bid_micros: 700_000, version: 2 });
      expect((await admin(daemon.url, 'GET', '/v1/admin/catalog/ads/ad00000000')).json).toMatchObject({ status: 'paused' });
      expect((await admin(daemon.url, 'GET', '/v1/admin/campaigns/c000001')).json).toMatchObject({ status: 'paused', bid_micros: 700_000 });
      expect(daemon.output()).toMatch(/"msg":"catalog-changes.json edit not moved to the store","entity":"campaign","id":"nope"/);
      expect(existsSync(path.join(dataDir, 'catalog-changes.json'))).toBe(false);
      expect(existsSync(path.join(dataDir, 'catalog-changes.json.moved-to-store'))).toBe(true);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});

describe('three replicas sharing PostgreSQL', () => {
  let postgres: PostgresServer;
  const replicas: Daemon[] = [];
  beforeAll(async () => {
    postgres = await startPostgres();
    const url = await postgres.createDatabase();
    // The first seeds the store; the others find it seeded.
    replicas.push(await startDaemon({ ...baseEnv, DATABASE_URL: url }));
    replicas.push(...(await Promise.all([1, 2].map(() => startDaemon({ ...baseEnv, DATABASE_URL: url })))));
  });
  afterAll(async () => {
    for (const replica of replicas) expect(await replica.stop()).toBe(0);
    await postgres?.stop();
  });

  it('serves an ad created on one replica on every replica within a second', async () => {
    const delays: number[] = [];
    // 34 rounds: 102 create-to-win delays, enough for a p99.
    for (let round = 0; round < 34; round++) {
      const tag = `fleet-${round}`;
      const writer = replicas[round % 3]!;
      await createLive(writer.url, tag);
      const created = performance.now();
      const ready = await Promise.all(replicas.map(async (replica) => (await within(replica.url, 1000, wins(`ad-${tag}`)), performance.now() - created)));
      delays.push(...ready);
      expect((await admin(writer.url, 'PATCH', `/v1/admin/catalog/ads/ad-${tag}`, { status: 'paused' })).status).toBe(200);
      await Promise.all(replicas.map((replica) => within(replica.url, 1000, loses(`ad-${tag}`))));
    }
    delays.sort((a, b) => a - b);
    const at = (share: number) => delays[Math.min(delays.length - 1, Math.floor(share * delays.length))]!.toFixed(0);
    console.log(`propagation across 3 replicas, ${delays.length} delays: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${delays.at(-1)!.toFixed(0)} ms`);
    expect(delays.at(-1)).toBeLessThan(1000);
  });
});
