import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import type { Manifest } from '../../src/engine/model_dir';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ResponseStatus } from '../../src/protocol/schema';
import { rehashManifestFile } from '../../src/engine/model_dir';
import { copyOfTinyModel, fillFloats, hopelessHeadsModel, nanHeadsModel } from '../helpers/models';
import { tinyModelWithCampaigns } from '../helpers/events';
import { postAd } from '../helpers/requests';
import { tinyModelDir } from '../setup/tiny_model';

const token = 'admin-token-for-tests';

/** A decision's status; the long deadline keeps it from being answered degraded (from historical rates, not the model) on a busy machine. */
async function adStatus(daemon: Daemon): Promise<ResponseStatus> {
  return decodeAdResponse(new Uint8Array(await (await postAd(daemon.url, encodeAdRequest({ query: 'dog food', tmaxMs: 1000 }))).arrayBuffer())).status();
}

describe('model integrity: a damaged model is refused and the serving one keeps serving', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon({ ADSERVE_MODEL_DIR: tinyModelDir, ADSERVE_ADMIN_TOKEN: token });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  /** Asks the daemon to swap in `dir` and returns the HTTP status and error message. */
  async function load(dir: string): Promise<{ status: number; message: string }> {
    const response = await fetch(`${daemon.url}/v1/admin/models`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ dir }),
    });
    const body = (await response.json()) as { error?: { message: string } };
    return { status: response.status, message: body.error?.message ?? '' };
  }

  async function expectStillServing(): Promise<void> {
    expect(await adStatus(daemon)).toBe(ResponseStatus.Ok);
    expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);
    const models = (await (await fetch(`${daemon.url}/v1/admin/models`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      serving: { dir: string };
    };
    expect(models.serving.dir).toBe(tinyModelDir);
  }

  it("refuses ad embeddings overwritten with NaN at the same size (SHA-256 no longer the manifest's)", async () => {
    const dir = copyOfTinyModel('nan-embeddings');
    fillFloats(dir, 'ad_embeddings.f32', Number.NaN);
    const { status, message } = await load(dir);
    expect(status).toBe(422);
    expect(message).toContain(path.join(dir, 'ad_embeddings.f32'));
    expect(message).toMatch(/does not match its manifest/);
    await expectStillServing();
  });

  it("refuses a file of finite values whose SHA-256 is not the manifest's", async () => {
    const dir = copyOfTinyModel('finite-garbage');
    fillFloats(dir, 'user_embeddings.f32', 0.25);
    const { status, message } = await load(dir);
    expect(status).toBe(422);
    expect(message).toContain(path.join(dir, 'user_embeddings.f32'));
    await expectStillServing();
  });

  it('refuses a manifest that gives a served file no SHA-256', async () => {
    const dir = copyOfTinyModel('no-hash');
    const manifestPath = path.join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    delete (manifest.files['users.json'] as Partial<Manifest['files'][string]>).sha256;
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const { status, message } = await load(dir);
    expect(status).toBe(422);
    expect(message).toMatch(/manifest has no SHA-256 for users\.json/);
    await expectStillServing();
  });

  it('refuses NaN in a tensor file even when the manifest hash was recomputed to match', async () => {
    for (const name of ['ad_embeddings.f32', 'ad_numeric.f32']) {
      const dir = copyOfTinyModel(`rehashed-nan-${name}`);
      fillFloats(dir, name, Number.NaN);
      rehashManifestFile(dir, name);
      const { status, message } = await load(dir);
      expect(status, name).toBe(422);
      expect(message, name).toContain(path.join(dir, name));
      expect(message, name).toMatch(/non-finite value \(-?nan\)/i);
    }
    const dir = copyOfTinyModel('rehashed-inf');
    fillFloats(dir, 'user_category.f32', Number.POSITIVE_INFINITY);
    rehashManifestFile(dir, 'user_category.f32');
    const { status, message } = await load(dir);
    expect(status).toBe(422);
    expect(message).toMatch(/user_category\.f32 holds a non-finite value \(inf\)/);
    await expectStillServing();
  });

  it('refuses a model that fills none of the warm-up requests while the serving one fills them', async () => {
    // The catalog that serves is the store's, so what cannot fill must be the model itself: heads
    // predicting about 0 leave every campaign of a CPC-only catalog below its reserve.
    const cpcOnly = tinyModelWithCampaigns((campaign) => (campaign.bid_type = 'CPC'));
    const own = await startDaemon({ ADSERVE_MODEL_DIR: cpcOnly, ADSERVE_ADMIN_TOKEN: token });
    try {
      expect(await adStatus(own)).toBe(ResponseStatus.Ok);
      const response = await fetch(`${own.url}/v1/admin/models`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ dir: hopelessHeadsModel(cpcOnly) }),
      });
      expect(response.status).toBe(422);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(
        /filled none of the 12 warm-up requests; the serving model filled \d+/,
      );
      expect(await adStatus(own)).toBe(ResponseStatus.Ok);
    } finally {
      expect(await own.stop()).toBe(0);
    }
  });

  it('refuses a model whose scores are NaN', async () => {
    const { status, message } = await load(nanHeadsModel());
    expect(status).toBe(422);
    expect(message).toMatch(/candidates of the warm-up requests got a finite score/);
    await expectStillServing();
  });
});

describe('readiness: /readyz answers 503 while the serving model cannot fill', () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon({ ADSERVE_MODEL_DIR: nanHeadsModel(), ADSERVE_ADMIN_TOKEN: token, ADSERVE_CANARY_INTERVAL_MS: '100' });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('is unready with the reason, stays so across canary rounds, and is ready once a model that fills is swapped in', async () => {
    const readyz = async () => {
      const response = await fetch(`${daemon.url}/readyz`);
      return { status: response.status, text: await response.text() };
    };
    expect(await readyz()).toEqual({ status: 503, text: expect.stringMatching(/the serving model cannot fill: none of the \d+ candidates/) });
    expect(await adStatus(daemon)).toBe(ResponseStatus.NoFill);
    await new Promise((done) => setTimeout(done, 500));
    expect((await readyz()).status).toBe(503);
    const swapped = await fetch(`${daemon.url}/v1/admin/models`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ dir: tinyModelDir }),
    });
    expect(swapped.status).toBe(200);
    expect((await readyz()).status).toBe(200);
    expect(await adStatus(daemon)).toBe(ResponseStatus.Ok);
  });
});
