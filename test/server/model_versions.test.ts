import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { fillFloats, modelHeldAtVerification } from '../helpers/models';
import { postAd } from '../helpers/requests';
import { tinyModelDir } from '../setup/tiny_model';

const token = 'admin-token-for-tests';

/**
 * A repository of the tiny model under four versions, each with its own manifest version; v3 is
 * damaged (a file no longer matches its hash). In natural order v10 is the newest, so a daemon
 * that sorted versions as plain strings would pick the damaged v3 and fail to start.
 */
function tinyRepository(): string {
  const repository = mkdtempSync(path.join(tmpdir(), 'adserve-repository-'));
  for (const version of ['v1', 'v2', 'v3', 'v10']) {
    const dir = path.join(repository, 'tiny', version);
    mkdirSync(path.dirname(dir), { recursive: true });
    cpSync(tinyModelDir, dir, { recursive: true });
    const manifestPath = path.join(dir, 'manifest.json');
    writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), version: `tiny-${version}` }));
  }
  fillFloats(path.join(repository, 'tiny', 'v3'), 'ad_embeddings.f32', 0.5);
  return repository;
}

const repository = tinyRepository();
const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-versions-data-'));
let daemon: Daemon;

const start = (modelDir: string): Promise<Daemon> =>
  startDaemon({ ADSERVE_MODEL_REPOSITORY: repository, ADSERVE_MODEL_DIR: modelDir, ADSERVE_DATA_DIR: dataDir, ADSERVE_ADMIN_TOKEN: token });

beforeAll(async () => {
  daemon = await start('tiny');
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

const admin = (method: string, suffix = '', body?: unknown): Promise<Response> =>
  fetch(`${daemon.url}/v1/admin/models${suffix}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

interface Listing {
  serving: { version: string; sha256: string };
  models: Array<{ name: string | null; version: string | null; modelVersion: string | null; modelSha256: string | null; arms: string[] }>;
  history: Array<{ dir: string; modelVersion: string }>;
}

const listing = async (): Promise<Listing> => (await (await admin('GET')).json()) as Listing;

/** What serves, as the three places that tell it: the admin API, an ad response and /metrics. */
async function servingVersion(): Promise<string> {
  const { serving } = await listing();
  const answered = decodeAdResponse(new Uint8Array(await (await postAd(daemon.url, encodeAdRequest({ query: 'dog food' }))).arrayBuffer())).modelVersion();
  expect(answered).toBe(serving.version);
  const info = (await (await fetch(`${daemon.url}/metrics`)).text()).split('\n').filter((line) => line.startsWith('adserve_model_info{'));
  expect(info).toEqual([`adserve_model_info{arm="a",version="${serving.version}",sha256="${serving.sha256}"} 1`]);
  return serving.version;
}

describe('model versions', () => {
  it('serves the newest version of the configured name and lists every version', async () => {
    expect(await servingVersion()).toBe('tiny-v10');
    const { models, history } = await listing();
    expect(models.map((model) => [model.name, model.version, model.modelVersion, model.arms])).toEqual([
      ['tiny', 'v1', 'tiny-v1', []],
      ['tiny', 'v2', 'tiny-v2', []],
      ['tiny', 'v3', 'tiny-v3', []],
      ['tiny', 'v10', 'tiny-v10', ['a']],
    ]);
    expect(models.every((model) => /^[0-9a-f]{64}$/.test(model.modelSha256 ?? ''))).toBe(true);
    expect(history).toEqual([]);
  });

  it('refuses a rollback when nothing served before', async () => {
    const response = await admin('POST', '/rollback');
    expect(response.status).toBe(409);
    expect(await servingVersion()).toBe('tiny-v10');
  });

  it('swaps to a named version', async () => {
    const response = await admin('POST', '', { name: 'tiny', version: 'v1' });
    expect(response.status).toBe(200);
    expect(((await response.json()) as Listing).serving.version).toBe('tiny-v1');
    expect(await servingVersion()).toBe('tiny-v1');
    expect((await listing()).history.map((entry) => entry.modelVersion)).toEqual(['tiny-v10']);
    expect((await admin('POST', '', { name: 'tiny', version: 'v99' })).status).toBe(404);
    expect((await admin('POST', '', { name: '..', version: 'v1' })).status).toBe(404);
    expect((await admin('POST', '', { name: 'tiny', dir: repository })).status).toBe(422);
  });

  it('refuses a damaged version: the serving model keeps serving and the history does not change', async () => {
    const response = await admin('POST', '', { name: 'tiny', version: 'v3' });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/ad_embeddings\.f32 does not match its manifest/);
    expect(await servingVersion()).toBe('tiny-v1');
    expect((await listing()).history.map((entry) => entry.modelVersion)).toEqual(['tiny-v10']);
  });

  it('rolls back to the previously serving model, then has nothing left to roll back to', async () => {
    const response = await admin('POST', '/rollback');
    expect(response.status).toBe(200);
    expect(((await response.json()) as Listing).serving.version).toBe('tiny-v10');
    expect(await servingVersion()).toBe('tiny-v10');
    expect((await listing()).history).toEqual([]);
    expect((await admin('POST', '/rollback')).status).toBe(409);
  });

  it('refuses a rollback while a load runs', async () => {
    expect((await admin('POST', '', { name: 'tiny', version: 'v2' })).status).toBe(200);
    const held = modelHeldAtVerification();
    const swap = admin('POST', '', { dir: held.dir });
    // The held swap owns the swapper once its load is listed.
    for (let i = 0; i < 200 && ((await (await admin('GET')).json()) as { loading: string | null }).loading === null; i++)
      await new Promise((done) => setTimeout(done, 25));
    expect((await admin('POST', '/rollback')).status).toBe(409);
    await held.release();
    expect((await swap).status).toBe(200);
    expect((await listing()).history.map((entry) => entry.modelVersion)).toEqual(['tiny-v10', 'tiny-v2']);
  });

  it('keeps the history across a restart', async () => {
    expect(await daemon.stop()).toBe(0);
    daemon = await start('tiny/v1');
    expect(await servingVersion()).toBe('tiny-v1');
    expect((await listing()).history.map((entry) => entry.modelVersion)).toEqual(['tiny-v10', 'tiny-v2']);
    expect((await admin('POST', '/rollback')).status).toBe(200);
    expect(await servingVersion()).toBe('tiny-v2');
    // A name without a version swaps in its newest.
    expect((await admin('POST', '', { name: 'tiny' })).status).toBe(200);
    expect(await servingVersion()).toBe('tiny-v10');
    expect((await admin('POST', '/rollback')).status).toBe(200);
    expect(await servingVersion()).toBe('tiny-v2');
    expect((await admin('POST', '/rollback')).status).toBe(200);
    expect(await servingVersion()).toBe('tiny-v10');
    expect((await admin('POST', '/rollback')).status).toBe(409);
  });
});
