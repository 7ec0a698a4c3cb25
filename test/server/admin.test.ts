import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ResponseStatus } from '../../src/protocol/schema';
import { postAd } from '../helpers/requests';
import { tinyModelDir } from '../setup/tiny_model';

const token = 'admin-token-for-tests';
let daemon: Daemon;

beforeAll(async () => {
  // Hundreds of requests at once: these tests are about swapping, not admission control.
  daemon = await startDaemon({ ADSERVE_MODEL_DIR: '/nonexistent/model', ADSERVE_ADMIN_TOKEN: token, ADSERVE_MAX_CONCURRENT_DECISIONS: '1000' });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

const admin = (method: string, body?: unknown, auth = `Bearer ${token}`, suffix = ''): Promise<Response> =>
  fetch(`${daemon.url}/v1/admin/models${suffix}`, {
    method,
    headers: { authorization: auth, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function status(): Promise<ResponseStatus> {
  return decodeAdResponse(new Uint8Array(await (await postAd(daemon.url, encodeAdRequest({ query: 'dog food' }))).arrayBuffer())).status();
}

describe('admin: models', () => {
  it('refuses requests without the bearer token', async () => {
    expect((await admin('GET', undefined, '')).status).toBe(401);
    expect((await admin('GET', undefined, 'Bearer nope')).status).toBe(401);
  });

  it('loads, warms and swaps in a model while serving, then serves it', async () => {
    expect(await status()).toBe(ResponseStatus.NoEngine);
    expect((await fetch(`${daemon.url}/readyz`)).status).toBe(503);
    const response = await admin('POST', { dir: tinyModelDir });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { serving: { version: string; ads: number } };
    expect(body.serving.version).toMatch(/^tiny-/);
    expect(await (await fetch(`${daemon.url}/metrics`)).text()).toContain(`adserve_model_info{arm="a",version="${body.serving.version}",`);
    expect(body.serving.ads).toBeGreaterThan(0);
    // Without a model repository the listing holds just what serves.
    expect(((await (await admin('GET')).json()) as { models: unknown[] }).models).toEqual([
      { name: null, version: null, dir: tinyModelDir, modelVersion: body.serving.version, modelSha256: expect.stringMatching(/^[0-9a-f]{64}$/), arms: ['a'] },
    ]);
    expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);
    expect(await status()).toBe(ResponseStatus.Ok);
  });

  it('keeps serving the current model when a swap fails, and says why', async () => {
    const response = await admin('POST', { dir: '/nonexistent/other-model' });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/cannot read .*manifest.json/);
    expect((await admin('POST', { nope: 1 })).status).toBe(422);
    expect((await fetch(`${daemon.url}/v1/admin/models`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{' })).status).toBe(400);
    expect(await status()).toBe(ResponseStatus.Ok);
  });

  it('runs an A/B test: a stable share of users goes to arm B, with per-arm metrics', async () => {
    // A copy of the tiny model under another version name, so answers show which arm served them.
    const challengerDir = mkdtempSync(path.join(tmpdir(), 'adserve-arm-b-'));
    cpSync(tinyModelDir, challengerDir, { recursive: true });
    const manifestPath = path.join(challengerDir, 'manifest.json');
    writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), version: 'tiny-challenger' }));
    const started = await admin('POST', { dir: challengerDir, arm: 'b', share: 0.3 });
    expect(started.status).toBe(200);
    expect(((await started.json()) as { challenger: { share: number } }).challenger.share).toBe(0.3);
    const versionFor = async (user: string): Promise<string> =>
      decodeAdResponse(new Uint8Array(await (await postAd(daemon.url, encodeAdRequest({ query: 'tv', userId: user }))).arrayBuffer())).modelVersion()!;
    const users = Array.from({ length: 200 }, (_, i) => `ab-user-${i}`);
    const first = await Promise.all(users.map(versionFor));
    const second = await Promise.all(users.map(versionFor));
    expect(second).toEqual(first); // a user stays in one arm
    const inB = first.filter((version) => version === 'tiny-challenger').length;
    expect(inB).toBeGreaterThan(30);
    expect(inB).toBeLessThan(90);
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toContain(`adserve_arm_requests_total{arm="b",model="tiny-challenger"} ${inB * 2}`);
    const servingModels = (text: string): string[] => text.split('\n').filter((line) => line.startsWith('adserve_model_info{'));
    expect(servingModels(metrics)).toEqual([
      expect.stringMatching(/^adserve_model_info\{arm="a",version="tiny-[0-9a-f]+",sha256="[0-9a-f]{64}"\} 1$/),
      expect.stringMatching(/^adserve_model_info\{arm="b",version="tiny-challenger",sha256="[0-9a-f]{64}"\} 1$/),
    ]);
    expect((await admin('DELETE', undefined, `Bearer ${token}`, '/b')).status).toBe(200);
    expect(servingModels(await (await fetch(`${daemon.url}/metrics`)).text())).toEqual([expect.stringMatching(/^adserve_model_info\{arm="a",version="tiny-/)]);
    expect(new Set(await Promise.all(users.slice(0, 50).map(versionFor)))).not.toContain('tiny-challenger');
    expect((await admin('DELETE', undefined, `Bearer ${token}`, '/b')).status).toBe(404);
  });

  it('drops no request while a swap happens under load', async () => {
    const load = Array.from({ length: 300 }, (_, i) => postAd(daemon.url, encodeAdRequest({ id: `swap-${i}`, query: 'yoga mat' })));
    const swap = admin('POST', { dir: tinyModelDir });
    const responses = await Promise.all(load);
    expect((await swap).status).toBe(200);
    const statuses = await Promise.all(responses.map(async (r) => [r.status, decodeAdResponse(new Uint8Array(await r.arrayBuffer())).status()]));
    expect(statuses.every(([http, ad]) => http === 200 && ad === ResponseStatus.Ok)).toBe(true);
  });
});
