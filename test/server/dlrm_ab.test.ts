import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import type { Manifest } from '../../src/engine/model_dir';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ResponseStatus } from '../../src/protocol/schema';
import { copyOfModel } from '../helpers/models';
import { postAd } from '../helpers/requests';
import { tinyDlrmModelDir, tinyModelDir } from '../setup/tiny_model';

const token = 'admin-token-for-tests';
let daemon: Daemon;
const versionOf = (dir: string): string => (JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest).version;

beforeAll(async () => {
  // Configured 'precomputed' (the default): the DLRM arm must be served by its TorchScript score
  // regardless. A hundred requests at once: this is about the arms, not admission control.
  daemon = await startDaemon({
    ADSERVE_MODEL_DIR: tinyModelDir,
    ADSERVE_ADMIN_TOKEN: token,
    ADSERVE_FUSION: 'precomputed',
    ADSERVE_MAX_CONCURRENT_DECISIONS: '1000',
  });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

const admin = (method: string, body?: unknown, suffix = ''): Promise<Response> =>
  fetch(`${daemon.url}/v1/admin/models${suffix}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function serve(user: string): Promise<{ version: string; status: ResponseStatus; ads: number }> {
  const response = decodeAdResponse(new Uint8Array(await (await postAd(daemon.url, encodeAdRequest({ query: 'dog food', userId: user }))).arrayBuffer()));
  return { version: response.modelVersion()!, status: response.status(), ads: response.adsLength() };
}

describe('A/B: the multi-tower model against the DLRM scorer', () => {
  it('serves the DLRM as arm B beside the multi-tower arm A, each to a stable share of users', async () => {
    const dlrmVersion = versionOf(tinyDlrmModelDir);
    expect(dlrmVersion).not.toBe(versionOf(tinyModelDir));
    const started = await admin('POST', { dir: tinyDlrmModelDir, arm: 'b', share: 0.5 });
    expect(started.status).toBe(200);
    const users = Array.from({ length: 120 }, (_, i) => `dlrm-ab-user-${i}`);
    const first = await Promise.all(users.map(serve));
    expect(first.every((answer) => answer.status === ResponseStatus.Ok && answer.ads > 0)).toBe(true);
    const inB = first.filter((answer) => answer.version === dlrmVersion).length;
    expect(inB).toBeGreaterThan(30);
    expect(inB).toBeLessThan(90);
    expect(first.filter((answer) => answer.version === versionOf(tinyModelDir)).length).toBe(users.length - inB);
    expect((await Promise.all(users.map(serve))).map((answer) => answer.version)).toEqual(first.map((answer) => answer.version));
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toContain(`adserve_arm_requests_total{arm="b",model="${dlrmVersion}"} ${inB * 2}`);
    expect((await admin('DELETE', undefined, '/b')).status).toBe(200);
  });

  it('refuses a model whose manifest names an unknown scorer, and keeps serving', async () => {
    const dir = copyOfModel(tinyDlrmModelDir, 'unknown-scorer');
    const manifestPath = path.join(dir, 'manifest.json');
    writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), scorer: 'wide-and-deep' }));
    const response = await admin('POST', { dir, arm: 'b', share: 0.5 });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/scorer "wide-and-deep"/);
    const answer = await serve('dlrm-ab-user-0');
    expect(answer.status).toBe(ResponseStatus.Ok);
    expect(answer.version).toBe(versionOf(tinyModelDir));
  });
});
