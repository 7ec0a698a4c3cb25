// The benchmark's open-loop driver against a plain Node HTTP server whose answers the test shapes:
// uniform arrivals, sends that never wait for earlier answers, latency from the scheduled time,
// one request per connection at a time and the drop policy.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { afterEach, describe, expect, it } from 'vitest';

import { parseResponse, percentiles, runOpenLoop, scheduledOffsetNs } from '../../bench/open_loop';

interface Arrival {
  atMs: number;
  socket: Socket;
}

let server: http.Server | undefined;

/** A server answering every POST after `delayMs(arrivalMs)`; arrivals are in ms since `startedAt`. */
async function startServer(delayMs: (arrivalMs: number) => number): Promise<{ port: number; arrivals: Arrival[]; overlapped: () => number }> {
  const startedAt = performance.now();
  const arrivals: Arrival[] = [];
  const busy = new Set<Socket>();
  let overlaps = 0;
  server = http.createServer((request, response) => {
    const socket = request.socket;
    if (busy.has(socket)) overlaps++;
    busy.add(socket);
    const atMs = performance.now() - startedAt;
    arrivals.push({ atMs, socket });
    request.resume();
    request.on('end', () =>
      setTimeout(() => {
        busy.delete(socket);
        response.end('ok');
      }, delayMs(atMs)),
    );
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, arrivals, overlapped: () => overlaps };
}

afterEach(async () => {
  if (!server) return;
  const closing = new Promise((resolve) => server!.close(resolve));
  server.closeAllConnections();
  await closing;
  server = undefined;
});

const body = [Buffer.from('request')];

describe('open-loop schedule and statistics', () => {
  it('spaces request i at exactly i / rate from the start', () => {
    expect(scheduledOffsetNs(0, 300)).toBe(0);
    expect(scheduledOffsetNs(3, 300)).toBe(10_000_000);
    for (let i = 1; i < 1000; i++) expect(Math.abs(scheduledOffsetNs(i, 300) - scheduledOffsetNs(i - 1, 300) - 1e9 / 300)).toBeLessThanOrEqual(1);
  });

  it('takes nearest-rank percentiles of the recorded values only', () => {
    const values = new Float64Array(2000).fill(1e9); // slots past `count` must be ignored
    for (let i = 0; i < 1000; i++) values[i] = 1000 - i;
    expect(percentiles(values, 1000)).toEqual({ p50: 500, p90: 900, p99: 990, p999: 999, mean: 500.5, max: 1000 });
    expect(percentiles(values, 0).p99).toBe(0);
  });

  it('frames an HTTP answer by its Content-Length and refuses one without', () => {
    const answer = Buffer.from('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy!');
    expect(parseResponse(answer.subarray(0, 40))).toBeUndefined();
    expect(parseResponse(answer.subarray(0, answer.length - 1))).toBeUndefined();
    expect(parseResponse(answer)).toEqual({ status: 503, length: answer.length });
    expect(() => parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'))).toThrow(/unsupported HTTP answer/);
  });
});

describe('open-loop driver', () => {
  it('sends at uniform intervals, not in bursts', async () => {
    const { port, arrivals } = await startServer(() => 0);
    const result = await runOpenLoop({
      host: '127.0.0.1',
      port,
      path: '/',
      bodies: body,
      rate: 100,
      durationSeconds: 1.5,
      initialConnections: 16,
      maxConnections: 64,
    });
    expect(result.ok).toBe(150);
    const gaps = arrivals
      .slice(1)
      .map((arrival, i) => arrival.atMs - arrivals[i]!.atMs)
      .sort((a, b) => a - b);
    // 10 ms apart by the schedule; a burst per connection (16 at once) would put most gaps near 0.
    expect(gaps[Math.floor(gaps.length / 2)]).toBeGreaterThan(7);
    expect(gaps[Math.floor(gaps.length / 2)]).toBeLessThan(13);
    expect(gaps.filter((gap) => gap < 3).length).toBeLessThan(gaps.length / 5);
  });

  it('keeps sending on schedule while the server stalls, on new connections, never two requests in flight on one', async () => {
    // Everything arriving between 300 and 600 ms is answered at 600 ms.
    const { port, arrivals, overlapped } = await startServer((at) => (at >= 300 && at < 600 ? 600 - at : 0));
    const result = await runOpenLoop({
      host: '127.0.0.1',
      port,
      path: '/',
      bodies: body,
      rate: 100,
      durationSeconds: 1,
      initialConnections: 2,
      maxConnections: 100,
    });
    expect(result.ok).toBe(100);
    expect(overlapped()).toBe(0);
    expect(arrivals.filter((arrival) => arrival.atMs >= 300 && arrival.atMs < 600).length).toBeGreaterThanOrEqual(20);
    expect(result.connectionsOpened).toBeGreaterThanOrEqual(20);
    // About 30 of 100 requests waited 0-300 ms for the stall to end.
    expect(result.latencyMs.p90).toBeGreaterThan(100);
    expect(result.latencyMs.p50).toBeLessThan(50);
  });

  it('times latency from the scheduled send, so a stalled load generator cannot hide it', async () => {
    const { port } = await startServer(() => 0);
    // The driver's own event loop is blocked for 300 ms: the requests due meanwhile leave late.
    const blocker = setTimeout(() => {
      const until = performance.now() + 300;
      while (performance.now() < until);
    }, 200);
    const result = await runOpenLoop({
      host: '127.0.0.1',
      port,
      path: '/',
      bodies: body,
      rate: 100,
      durationSeconds: 1,
      initialConnections: 4,
      maxConnections: 100,
    });
    clearTimeout(blocker);
    expect(result.ok).toBe(100);
    expect(result.sendLagMs.max).toBeGreaterThan(250);
    expect(result.latencyMs.p90).toBeGreaterThan(100);
  });

  it('drops requests due while every connection is busy at the cap, and sends the rest', async () => {
    const { port, arrivals, overlapped } = await startServer(() => 50);
    const result = await runOpenLoop({
      host: '127.0.0.1',
      port,
      path: '/',
      bodies: body,
      rate: 100,
      durationSeconds: 1,
      initialConnections: 1,
      maxConnections: 3,
    });
    // 50 ms answers at 10 ms intervals need 5 connections; 3 carry about 60 of the 100.
    expect(result.dropped).toBeGreaterThan(20);
    expect(result.ok + result.dropped).toBe(100);
    expect(arrivals.length).toBe(result.ok);
    expect(new Set(arrivals.map((arrival) => arrival.socket)).size).toBeLessThanOrEqual(3);
    expect(overlapped()).toBe(0);
    expect(result.achievedRate).toBe(result.ok);
  });
});
