import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';

import { Builder } from 'flatbuffers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { AdRequest, Placement, ResponseStatus } from '../../src/protocol/schema';
import { postAd } from '../helpers/requests';

let daemon: Daemon;

beforeAll(async () => {
  daemon = await startDaemon({ ADSERVE_MAX_BODY_BYTES: '4096', ADSERVE_MODEL_DIR: '/nonexistent/model' });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

async function expectError(response: Response, status: number, message: RegExp): Promise<void> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toBe('application/json');
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error.message).toMatch(message);
}

describe('POST /v1/ads', () => {
  it('answers a valid request with an AdResponse that says no engine is loaded', async () => {
    const response = await postAd(daemon.url, encodeAdRequest({ id: 'abc-123', query: 'running shoes', userId: 'u1' }));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-flatbuffers');
    const ad = decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
    expect(ad.requestId()).toBe('abc-123');
    expect(ad.status()).toBe(ResponseStatus.NoEngine);
    expect(ad.message()).toMatch(/no engine loaded/);
    expect(ad.adsLength()).toBe(0);
    expect(ad.timingsLength()).toBe(0);
  });

  it('reports stage timings only when the request asks for debug', async () => {
    const response = await postAd(daemon.url, encodeAdRequest({ debug: true }));
    const ad = decodeAdResponse(new Uint8Array(await response.arrayBuffer()));
    expect(ad.timingsLength()).toBe(1);
    expect(ad.timings(0)!.stage()).toBe('parse');
    expect(ad.timings(0)!.nanos()).toBeGreaterThan(0n);
  });

  it('rejects bytes that are not a FlatBuffer', async () => {
    await expectError(await postAd(daemon.url, new TextEncoder().encode('{"id":"json?"}')), 400, /AdRequest/);
  });

  it('rejects a truncated request', async () => {
    const full = encodeAdRequest({ query: 'a long enough query to make the buffer big' });
    // Cutting only into the builder's trailing alignment padding leaves a valid buffer, so cut into data.
    for (const size of [3, 8, Math.floor(full.byteLength / 2)]) {
      await expectError(await postAd(daemon.url, full.subarray(0, size)), 400, /truncated|verification|identifier/);
    }
  });

  it('rejects a buffer with another file identifier', async () => {
    const bytes = encodeAdRequest();
    bytes.set(new TextEncoder().encode('ADEV'), 4);
    await expectError(await postAd(daemon.url, bytes), 400, /file identifier is not "ADRQ"/);
  });

  it('rejects a request without its required id', async () => {
    // The generated builder refuses to omit a required field, so assemble the table by hand.
    const builder = new Builder(64);
    AdRequest.startAdRequest(builder);
    AdRequest.addPlacement(builder, Placement.Search);
    builder.finish(builder.endObject(), 'ADRQ');
    await expectError(await postAd(daemon.url, builder.asUint8Array()), 400, /verification/);
  });

  it('rejects an empty body', async () => {
    await expectError(await postAd(daemon.url, new Uint8Array(0)), 400, /empty AdRequest/);
  });

  it('rejects the wrong content type with 415', async () => {
    await expectError(await postAd(daemon.url, encodeAdRequest(), 'text/plain'), 415, /Content-Type must be application\/x-flatbuffers or application\/json/);
  });

  it('accepts content-type parameters and any case', async () => {
    const response = await postAd(daemon.url, encodeAdRequest(), 'Application/X-FlatBuffers; charset=binary');
    expect(response.status).toBe(200);
  });

  it('rejects an oversized body announced by Content-Length with 413', async () => {
    await expectError(await postAd(daemon.url, new Uint8Array(5000)), 413, /exceeds the limit of 4096/);
  });

  it('rejects an oversized chunked body with 413 while it streams', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${daemon.url}/v1/ads`,
        { method: 'POST', headers: { 'Content-Type': 'application/x-flatbuffers', 'Transfer-Encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write(new Uint8Array(1000));
      req.end();
    });
    expect(status).toBe(413);
  });

  it.each([
    ['an unknown placement', { placement: 200 as Placement }, /unknown placement 200/],
    ['no placement', { placement: Placement.Unknown }, /unknown placement 0/],
    ['a negative floor', { floorCpmMicros: -1n }, /floor_cpm_micros must be/],
    ['zero slots', { slots: 0 }, /slots must be in 1..10/],
    ['too many slots', { slots: 11 }, /slots must be in 1..10/],
    ['an empty id', { id: '' }, /id must be 1..128/],
  ])('rejects %s with 422', async (_name, spec, message) => {
    await expectError(await postAd(daemon.url, encodeAdRequest(spec)), 422, message);
  });

  it('keeps the admin API closed when no admin token is configured', async () => {
    await expectError(await fetch(`${daemon.url}/v1/admin/models`, { headers: { authorization: 'Bearer ' } }), 403, /admin API is disabled/);
  });

  it('answers other methods with 405 and unknown routes with 404', async () => {
    await expectError(await fetch(`${daemon.url}/v1/ads`), 405, /use POST/);
    await expectError(await fetch(`${daemon.url}/nope`), 404, /no route for GET \/nope/);
  });

  it('survives random and mutated bytes, then still serves', async () => {
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const valid = encodeAdRequest({ query: 'shoes', userId: 'user-7', slots: 3 });
    const statuses = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const bytes = i % 2 === 0 ? valid.slice() : new Uint8Array(1 + Math.floor(random() * 200));
      if (i % 2 === 0) {
        for (let flips = 0; flips < 3; flips++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      } else {
        for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
      }
      const response = await postAd(daemon.url, bytes);
      statuses.add(response.status);
      await response.arrayBuffer();
    }
    expect([...statuses].every((status) => [200, 400, 422].includes(status))).toBe(true);
    expect(statuses.has(400)).toBe(true);
    expect((await postAd(daemon.url, encodeAdRequest())).status).toBe(200);
  });

  it('answers many concurrent requests', async () => {
    const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => postAd(daemon.url, encodeAdRequest({ id: `concurrent-${i}` }))));
    const ids = await Promise.all(responses.map(async (r) => decodeAdResponse(new Uint8Array(await r.arrayBuffer())).requestId()));
    expect(ids).toEqual(Array.from({ length: 200 }, (_, i) => `concurrent-${i}`));
  });
});

describe('health and metrics', () => {
  it('is live', async () => {
    for (const path of ['/livez', '/healthz']) {
      const response = await fetch(`${daemon.url}${path}`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('ok\n');
    }
  });

  it('is not ready while no engine is loaded, and says why', async () => {
    const response = await fetch(`${daemon.url}/readyz`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ ready: false, reason: expect.stringMatching(/^no engine loaded/) });
  });

  it('exports request durations with exact SLO bucket boundaries', async () => {
    await postAd(daemon.url, encodeAdRequest({ placement: Placement.Homepage }));
    await postAd(daemon.url, encodeAdRequest(), 'text/plain');
    const response = await fetch(`${daemon.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const le of ['0.005', '0.01', '0.025', '0.05', '0.1']) {
      expect(text).toContain(`adserve_request_duration_seconds_bucket{le="${le}",route="ads",placement="Homepage",status="200"}`);
    }
    expect(text).toMatch(/adserve_request_duration_seconds_count\{route="ads",placement="none",status="415"\} [1-9]/);
    expect(text).toMatch(/adserve_build_info\{version="[^"]+",torch="1\.13\.\d+",faiss="1\.7\.\d+"/);
    expect(text).toContain('process_cpu_seconds_total');
  });
});

describe('graceful shutdown', () => {
  it('finishes an in-flight request after SIGTERM, refuses new connections, and exits 0', async () => {
    const own = await startDaemon({ ADSERVE_MODEL_DIR: '/nonexistent/model' });
    const body = encodeAdRequest({ id: 'in-flight' });
    const socket = connect(own.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let reply = '';
    socket.on('data', (chunk) => (reply += chunk.toString('latin1')));
    const head = `POST /v1/ads HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-flatbuffers\r\nContent-Length: ${body.byteLength}\r\n\r\n`;
    socket.write(head);
    socket.write(body.subarray(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 100));

    own.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(own.child.exitCode).toBeNull(); // still draining the half-sent request
    await expect(fetch(`${own.url}/livez`)).rejects.toThrow(); // listen socket closed

    socket.write(body.subarray(10));
    expect(await own.stop()).toBe(0);
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(reply).toContain('in-flight');
    expect(own.output()).toMatch(/"msg":"stopped","drained":true/);
  });

  it('gives up on a request that never completes once the grace period ends', async () => {
    const own = await startDaemon({ ADSERVE_SHUTDOWN_GRACE_MS: '300', ADSERVE_MODEL_DIR: '/nonexistent/model' });
    const socket = connect(own.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.on('error', () => undefined);
    socket.write('POST /v1/ads HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-flatbuffers\r\nContent-Length: 100\r\n\r\nabc');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await own.stop('SIGINT')).toBe(0);
    expect(own.output()).toMatch(/"msg":"stopped","drained":false,"abandoned":1/);
    socket.destroy();
  });
});
