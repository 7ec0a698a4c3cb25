// HTTP/1.1 and WebSocket framing edge cases, driven over raw sockets against the real daemon. Some
// tests pin a limit of uWebSockets.js (README, "Transport limits"): they assert today's behaviour so
// that a transport upgrade which changes it shows up here.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { decodeAdResponse, encodeAdRequest } from '../../src/protocol/encode_request';
import { ResponseStatus } from '../../src/protocol/schema';
import { tinyModelDir } from '../setup/tiny_model';

let daemon: Daemon;

beforeAll(async () => {
  // A real model, so an ad decision really is asynchronous; one decision at a time, so pipelined
  // WebSocket frames are shed.
  daemon = await startDaemon({ ADSERVE_MODEL_DIR: tinyModelDir, ADSERVE_MAX_BODY_BYTES: '4096', ADSERVE_MAX_CONCURRENT_DECISIONS: '1' });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

interface RawReply {
  bytes: Buffer;
  /** Whether the server closed the connection before `done` was satisfied or the wait ran out. */
  closed: boolean;
}

/** Writes `chunks` on one connection and collects what comes back until `done` says so, the server closes, or `waitMs` passes. */
function rawExchange(chunks: Array<string | Uint8Array>, done: (bytes: Buffer) => boolean, waitMs = 2000): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = connect(daemon.port, '127.0.0.1');
    let bytes = Buffer.alloc(0);
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes, closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      if (done(bytes)) finish(false);
    });
    // A reset after the answer is still a close; what was read stays in `bytes`.
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    for (const chunk of chunks) socket.write(chunk);
  });
}

interface ParsedResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Splits a byte stream into HTTP/1.1 responses (all framed by Content-Length, as adserve's are). */
function parseResponses(bytes: Buffer): ParsedResponse[] {
  const responses: ParsedResponse[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', offset);
    if (headEnd < 0) break;
    const [statusLine, ...fields] = bytes.subarray(offset, headEnd).toString('latin1').split('\r\n');
    const headers = new Map(fields.map((field) => [field.slice(0, field.indexOf(':')).toLowerCase(), field.slice(field.indexOf(':') + 1).trim()]));
    const length = Number(headers.get('content-length'));
    const bodyStart = headEnd + 4;
    if (bodyStart + length > bytes.length) break;
    responses.push({ status: Number(statusLine!.split(' ')[1]), headers, body: bytes.subarray(bodyStart, bodyStart + length) });
    offset = bodyStart + length;
  }
  return responses;
}

const responseCount = (count: number) => (bytes: Buffer) => parseResponses(bytes).length >= count;

function adPost(id: string): Buffer {
  const body = encodeAdRequest({ id, query: 'yoga mat' });
  const head = `POST /v1/ads HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-flatbuffers\r\nContent-Length: ${body.byteLength}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

const livez = 'GET /livez HTTP/1.1\r\nHost: x\r\n\r\n';

describe('HTTP/1.1 pipelining', () => {
  it('answers requests pipelined behind synchronously answered ones, in order', async () => {
    const reply = await rawExchange([livez + livez, adPost('after-livez')], responseCount(3));
    const responses = parseResponses(reply.bytes);
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200]);
    expect(responses[0]!.body.toString()).toBe('ok\n');
    expect(decodeAdResponse(new Uint8Array(responses[2]!.body)).requestId()).toBe('after-livez');
  });

  // Pinned limit: uWebSockets.js closes a connection on which a request arrives while the previous
  // response is still pending, so a request pipelined behind an ad request loses both.
  it('closes the connection without answering either request when one is pipelined behind POST /v1/ads', async () => {
    for (const behind of [livez, adPost('second')]) {
      // The first request must find no decision in flight (a dropped connection's decision runs on),
      // or it is shed at once with a 503 and nothing is pending when the second arrives.
      while (
        (
          await fetch(`${daemon.url}/v1/ads`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-flatbuffers' },
            body: encodeAdRequest({ id: 'probe', query: 'yoga mat' }),
          })
        ).status === 503
      ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const reply = await rawExchange([Buffer.concat([adPost('first'), Buffer.from(behind)])], responseCount(1));
      expect(reply).toEqual({ bytes: Buffer.alloc(0), closed: true });
    }
  });
});

function adPostHead(contentLength: string[], extra = ''): string {
  const lengths = contentLength.map((value) => `Content-Length: ${value}\r\n`).join('');
  return `POST /v1/ads HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-flatbuffers\r\n${lengths}${extra}\r\n`;
}

/** Expects exactly one JSON error with `status` and `code`, marked Connection: close, and then the close. */
function expectRefusal(reply: RawReply, status: number, code: string): void {
  const responses = parseResponses(reply.bytes);
  expect(responses.map((response) => response.status)).toEqual([status]);
  const [response] = responses;
  expect(response!.headers.get('content-type')).toBe('application/json');
  expect(response!.headers.get('connection')).toBe('close');
  expect((JSON.parse(response!.body.toString()) as { error: { code: string } }).error.code).toBe(code);
  expect(reply.closed).toBe(true);
}

describe('Content-Length', () => {
  it.each(['999999999', '1000000000', '4294967296', '1000000000000'])('answers a declared length of %s bytes with 413 and closes', async (length) => {
    const reply = await rawExchange([adPostHead([length])], () => false);
    expectRefusal(reply, 413, 'too_large');
  });

  it('answers 413 before the close while the client is still sending the body', async () => {
    const reply = await rawExchange([adPostHead(['10000000000']), randomBytes(64 * 1024)], () => false);
    expectRefusal(reply, 413, 'too_large');
  });

  it.each([[['-1']], [['abc']], [['1e3']], [['']], [['3', '5']]])('answers Content-Length values %j with 400 and closes', async (lengths) => {
    const reply = await rawExchange([adPostHead(lengths) + 'abcde'], () => false);
    expectRefusal(reply, 400, 'invalid_content_length');
  });

  it('accepts the same length repeated', async () => {
    const body = encodeAdRequest({ id: 'twice' });
    const reply = await rawExchange([adPostHead([String(body.byteLength), String(body.byteLength)]), body], responseCount(1));
    const [response] = parseResponses(reply.bytes);
    expect(response!.status).toBe(200);
    expect(decodeAdResponse(new Uint8Array(response!.body)).requestId()).toBe('twice');
  });

  it('answers a malformed length on POST /v1/events with 400 too', async () => {
    const head = 'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1e3\r\n\r\n';
    expectRefusal(await rawExchange([head], () => false), 400, 'invalid_content_length');
  });

  // Pinned limit: uWebSockets.js refuses Content-Length together with Transfer-Encoding before any
  // route runs, so there is nothing to answer with; it closes the connection.
  it('closes a request with both Content-Length and Transfer-Encoding without an answer', async () => {
    const reply = await rawExchange([adPostHead(['3'], 'Transfer-Encoding: chunked\r\n') + '3\r\nabc\r\n0\r\n\r\n'], () => false);
    expect(reply).toEqual({ bytes: Buffer.alloc(0), closed: true });
  });
});

async function openWs(): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}/v1/ws`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

function frames(ws: WebSocket, count: number): Promise<Buffer[]> {
  const received: Buffer[] = [];
  return new Promise((resolve) => {
    ws.on('message', (data: Buffer) => {
      received.push(data);
      if (received.length === count) resolve(received);
    });
  });
}

describe('WebSocket refusals', () => {
  it('echoes the request id of a frame that verifies but is invalid (422), and not of one that does not verify', async () => {
    const ws = await openWs();
    const answers = frames(ws, 2);
    ws.send(encodeAdRequest({ id: 'too-many-slots', slots: 99 }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    ws.send(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    const [invalid, garbage] = (await answers).map((frame) => decodeAdResponse(new Uint8Array(frame)));
    expect([invalid!.status(), invalid!.errorCode(), invalid!.requestId()]).toEqual([ResponseStatus.Rejected, 422, 'too-many-slots']);
    expect([garbage!.status(), garbage!.errorCode(), garbage!.requestId()]).toEqual([ResponseStatus.Rejected, 400, '']);
    ws.close();
  });

  it('echoes the request id of every frame shed under load (503), so pipelined answers stay correlated', async () => {
    const ws = await openWs();
    const count = 20;
    const answers = frames(ws, count);
    for (let i = 0; i < count; i++) ws.send(encodeAdRequest({ id: `burst-${i}`, query: 'dog food' }));
    const responses = (await answers).map((frame) => decodeAdResponse(new Uint8Array(frame)));
    expect(responses.map((response) => response.requestId()).sort()).toEqual(Array.from({ length: count }, (_, i) => `burst-${i}`).sort());
    expect(responses.some((response) => response.status() === ResponseStatus.Rejected && response.errorCode() === 503)).toBe(true);
    ws.close();
  });

  // Pinned limit: uWebSockets.js does not check the mask bit of client frames (RFC 6455 §5.1 wants
  // a 1002 close). It reads the first four payload bytes as the mask and waits for four more, so
  // an unmasked frame gets no answer and no close until idleTimeout.
  it('neither answers nor closes on an unmasked client frame', async () => {
    const key = randomBytes(16).toString('base64');
    const handshake = `GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const payload = encodeAdRequest({ id: 'unmasked' });
    expect(payload.byteLength).toBeLessThan(126);
    const frame = Buffer.concat([Buffer.from([0x82, payload.byteLength]), payload]);
    const handshakeLength = (bytes: Buffer): number => bytes.indexOf('\r\n\r\n') + 4;
    const reply = await rawExchange([handshake, frame], (bytes) => handshakeLength(bytes) > 3 && bytes.length > handshakeLength(bytes), 1500);
    expect(reply.bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
    expect(reply.bytes.length).toBe(handshakeLength(reply.bytes));
    expect(reply.closed).toBe(false);
  });
});
