import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ResponseStatus } from '../../src/protocol/schema';
import { tinyModelDir } from '../setup/tiny_model';

let daemon: Daemon;

beforeAll(async () => {
  daemon = await startDaemon({ ADSERVE_MODEL_DIR: tinyModelDir, ADSERVE_MAX_BODY_BYTES: '4096' });
});

afterAll(async () => {
  await daemon.stop();
});

async function connect(): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}/v1/ws`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

function collect(ws: WebSocket, count: number): Promise<Buffer[]> {
  const frames: Buffer[] = [];
  return new Promise((resolve) => {
    ws.on('message', (data: Buffer) => {
      frames.push(data);
      if (frames.length === count) resolve(frames);
    });
  });
}

describe('GET /v1/ws', () => {
  it('answers pipelined binary AdRequests, one AdResponse frame each, correlated by request id', async () => {
    const ws = await connect();
    const answers = collect(ws, 50);
    for (let i = 0; i < 50; i++) ws.send(encodeAdRequest({ id: `ws-${i}`, query: i % 2 ? 'dog food' : 'yoga mat', slots: 2 }));
    const responses = (await answers).map((frame) => decodeAdResponse(new Uint8Array(frame)));
    expect(responses.map((r) => r.requestId()).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `ws-${i}`).sort());
    expect(responses.every((r) => r.status() === ResponseStatus.Ok && r.adsLength() === 2)).toBe(true);
    ws.close();
  });

  it('rejects text and malformed frames with a Rejected AdResponse, and keeps the connection', async () => {
    const ws = await connect();
    const answers = collect(ws, 3);
    ws.send('{"id": "json"}');
    ws.send(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    ws.send(encodeAdRequest({ id: 'still-alive' }));
    const [text, garbage, valid] = (await answers).map((frame) => decodeAdResponse(new Uint8Array(frame)));
    expect([text!.status(), text!.errorCode()]).toEqual([ResponseStatus.Rejected, 415]);
    expect([garbage!.status(), garbage!.errorCode()]).toEqual([ResponseStatus.Rejected, 400]);
    expect(garbage!.message()).toMatch(/AdRequest/);
    expect(valid!.requestId()).toBe('still-alive');
    ws.close();
  });

  it('closes a connection that sends a frame over the size limit', async () => {
    const ws = await connect();
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(Buffer.alloc(10_000));
    expect(await closed).toBeGreaterThanOrEqual(1000);
  });

  it('closes open sockets with 1001 on shutdown', async () => {
    const own = await startDaemon({ ADSERVE_MODEL_DIR: tinyModelDir });
    const ws = new WebSocket(`ws://127.0.0.1:${own.port}/v1/ws`);
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    expect(await own.stop()).toBe(0);
    expect(await closed).toBe(1001);
  });
});
