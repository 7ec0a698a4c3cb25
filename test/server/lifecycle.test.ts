// Start-up and shutdown as a load balancer sees them: the daemon listens before its model loads,
// and after SIGTERM it keeps serving, unready, for drainDelayMs before the listener closes.
import { connect, type Socket } from 'node:net';

import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ResponseStatus } from '../../src/protocol/schema';
import { modelHeldAtVerification } from '../helpers/models';
import { postAd } from '../helpers/requests';
import { tinyModelDir } from '../setup/tiny_model';

const adminToken = 'admin-token-for-lifecycle-tests';

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 20));
  }
}

async function readyz(daemon: Daemon): Promise<{ status: number; retryAfter: string | null; body: Record<string, unknown> }> {
  const response = await fetch(`${daemon.url}/readyz`);
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Record<string, unknown> };
}

/** The status of one ad request that the model answers (not degraded to historical rates on a busy machine). */
async function adStatus(daemon: Daemon, id: string): Promise<ResponseStatus> {
  const response = await postAd(daemon.url, encodeAdRequest({ id, query: 'dog food', tmaxMs: 1000 }));
  expect(response.status).toBe(200);
  return decodeAdResponse(new Uint8Array(await response.arrayBuffer())).status();
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('start-up: the daemon listens before its model is loaded', () => {
  it('is live at once, unready with the stage and progress, refuses ads, events and admin with 503 starting, then serves', async () => {
    const held = modelHeldAtVerification();
    const daemon = await startDaemon({ ADSERVE_MODEL_DIR: held.dir, ADSERVE_ADMIN_TOKEN: adminToken }, { until: 'listening' });
    let released = false;
    try {
      expect((await fetch(`${daemon.url}/livez`)).status).toBe(200);
      await waitFor('the verifying stage', async () => ((await readyz(daemon)).body.startup as { stage?: string } | undefined)?.stage === 'verifying files');
      const unready = await readyz(daemon);
      expect(unready).toMatchObject({ status: 503, retryAfter: '1', body: { ready: false, reason: 'starting', startup: { stage: 'verifying files' } } });
      const { done, total } = unready.body.startup as { done: number; total: number };
      expect(total).toBeGreaterThan(0);
      expect(done).toBeGreaterThanOrEqual(0);
      expect(done).toBeLessThanOrEqual(total);

      const ad = await postAd(daemon.url, encodeAdRequest({ id: 'during-load' }));
      expect(ad.status).toBe(503);
      expect(ad.headers.get('retry-after')).toBe('1');
      expect(await ad.json()).toEqual({
        error: {
          code: 'starting',
          message: expect.stringMatching(/^adserve is starting \(verifying files, [\d.]+ s so far\) and serves once \/readyz answers 200/),
        },
      });

      const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}/v1/ws`);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const frame = new Promise<Buffer>((resolve) => ws.once('message', resolve));
      ws.send(encodeAdRequest({ id: 'ws-during-load' }));
      const refused = decodeAdResponse(new Uint8Array(await frame));
      expect({ status: refused.status(), code: refused.errorCode(), id: refused.requestId() }).toEqual({
        status: ResponseStatus.Rejected,
        code: 503,
        id: 'ws-during-load',
      });
      expect(refused.message()).toMatch(/adserve is starting/);

      const event = await fetch(`${daemon.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event_id: 'e1', type: 'impression', token: 'x' }),
      });
      expect({ status: event.status, body: await event.json() }).toMatchObject({ status: 503, body: { error: { code: 'starting' } } });
      const admin = await fetch(`${daemon.url}/v1/admin/models`, { headers: { authorization: `Bearer ${adminToken}` } });
      expect({ status: admin.status, body: await admin.json() }).toMatchObject({ status: 503, body: { error: { code: 'starting' } } });

      // A load that stays in one stage logs where it stands every 5 s, not only when the stage changes.
      await waitFor('a second progress line', () => (daemon.output().match(/"msg":"loading","stage":"verifying files"/g) ?? []).length >= 2, 8_000);

      // The metrics route answers too, and the WebSocket opened during the load is served once it ends.
      expect((await fetch(`${daemon.url}/metrics`)).status).toBe(200);
      await held.release();
      released = true;
      await waitFor('readiness', async () => (await readyz(daemon)).status === 200);
      expect((await readyz(daemon)).body).toEqual({ ready: true, reason: '' });
      expect(await adStatus(daemon, 'after-load')).toBe(ResponseStatus.Ok);
      const served = new Promise<Buffer>((resolve) => ws.once('message', resolve));
      ws.send(encodeAdRequest({ id: 'ws-after-load', query: 'dog food', tmaxMs: 1000 }));
      expect(decodeAdResponse(new Uint8Array(await served)).status()).toBe(ResponseStatus.Ok);
      ws.close();

      const stages = [...daemon.output().matchAll(/"msg":"loading","stage":"([^"]+)"/g)].map((match) => match[1]);
      expect([...new Set(stages)]).toEqual([
        'reading model directory',
        'seeding catalog store',
        'verifying files',
        'building catalog',
        'loading model and index',
        'following the catalog store',
        'warming up',
      ]);
      expect(daemon.output()).toMatch(/"msg":"started","ready":true/);
    } finally {
      // Until the pipe is written, a thread of the daemon waits in open(2) on it, and exiting waits for that thread.
      if (released) expect(await daemon.stop()).toBe(0);
      else await daemon.stop('SIGKILL');
    }
  });
});

describe('drain: after SIGTERM the daemon serves, unready, for drainDelayMs, then closes', () => {
  it('accepts and answers new connections during the delay, refuses connections after it, and finishes in-flight work', async () => {
    const daemon = await startDaemon({ ADSERVE_MODEL_DIR: tinyModelDir, ADSERVE_DRAIN_DELAY_MS: '1500' });
    expect((await readyz(daemon)).status).toBe(200);
    daemon.child.kill('SIGTERM');
    await waitFor('the unready line', () => daemon.output().includes('"msg":"unready"'));

    // New connections during the delay: readiness is off, everything else is still served.
    expect(await readyz(daemon)).toMatchObject({ status: 503, body: { ready: false, reason: 'draining' } });
    expect(await adStatus(daemon, 'during-delay')).toBe(ResponseStatus.Ok);
    const inFlight = await openSocket(daemon.port);
    let reply = '';
    inFlight.on('data', (chunk) => (reply += chunk.toString('latin1')));
    const body = encodeAdRequest({ id: 'in-flight', query: 'dog food', tmaxMs: 1000 });
    inFlight.write(`POST /v1/ads HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-flatbuffers\r\nContent-Length: ${body.byteLength}\r\n\r\n`);
    inFlight.write(body.subarray(0, 10));

    await waitFor('the listener to close', () => daemon.output().includes('"msg":"draining"'), 5_000);
    await expect(openSocket(daemon.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(daemon.child.exitCode).toBeNull();

    inFlight.write(body.subarray(10));
    expect(await daemon.stop()).toBe(0);
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(reply).toContain('in-flight');
    expect(daemon.output()).toMatch(/"msg":"stopped","drained":true/);
  });

  it('ends the delay at a second signal, and drains as usual', async () => {
    const daemon = await startDaemon({ ADSERVE_MODEL_DIR: tinyModelDir, ADSERVE_DRAIN_DELAY_MS: '600000' });
    try {
      daemon.child.kill('SIGTERM');
      await waitFor('the unready line', () => daemon.output().includes('"msg":"unready"'));
      expect((await readyz(daemon)).status).toBe(503);
      const signalled = Date.now();
      daemon.child.kill('SIGINT');
      expect(await daemon.stop()).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(daemon.output()).toMatch(/"msg":"second signal, ending the drain delay"/);
      expect(daemon.output()).toMatch(/"msg":"stopped","drained":true/);
    } finally {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
    }
  });
});
