// An open-loop HTTP/1.1 load generator for fixed-rate latency. Request i is due at
// start + i / rate exactly (uniform arrivals, not a burst per connection per tick as autocannon's
// overallRate sends them), whether or not earlier requests were answered, and its latency is timed
// from that scheduled instant, so a stalled server shows in the latencies instead of slowing the
// schedule down (no coordinated omission).
//
// Connection policy: keep-alive connections, at most one request in flight on each (uWebSockets.js
// closes a connection that pipelines a request behind a pending POST). A due request goes out on an
// idle connection; with none idle, a new connection is opened for it, up to `maxConnections`; with
// the pool at that cap and every connection busy, the request is dropped: never sent, counted, and
// missing from the achieved rate. Requests are sent by a millisecond timer, so a request can leave up
// to about a millisecond after it was due; that lag is part of its latency and reported on its own.
import net from 'node:net';

export interface OpenLoopOptions {
  host: string;
  port: number;
  path: string;
  /** Request bodies, sent in turn as POSTs; absent for GET. */
  bodies?: Buffer[];
  contentType?: string;
  /** Requests per second. */
  rate: number;
  durationSeconds: number;
  /** Connections opened (and connected) before the first request is due. */
  initialConnections: number;
  maxConnections: number;
  /** How long to wait for answers still outstanding after the last request was due. */
  drainMs?: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  mean: number;
  max: number;
}

export interface OpenLoopResult {
  offeredRate: number;
  /** 2xx answers per second of the schedule. */
  achievedRate: number;
  scheduled: number;
  ok: number;
  non2xx: number;
  /** Due while every connection was busy and the pool was at maxConnections: never sent. */
  dropped: number;
  /** Connection errors, closes and malformed answers while a request was in flight. */
  errors: number;
  /** Still unanswered when the drain time ran out. */
  timedOut: number;
  /** From the scheduled send time to the last byte of the answer, 2xx answers only (ms). */
  latencyMs: Percentiles;
  /** From the scheduled send time to the actual write, all sent requests (ms). */
  sendLagMs: Percentiles;
  connectionsOpened: number;
  peakInFlight: number;
}

/** Nanoseconds from the schedule's start to the moment request `index` is due. */
export function scheduledOffsetNs(index: number, rate: number): number {
  return Math.round((index * 1e9) / rate);
}

/** Nearest-rank percentiles (q in 0..1) of the first `count` values; zeros when there are none. */
export function percentiles(values: Float64Array, count: number): Percentiles {
  if (count === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, mean: 0, max: 0 };
  const sorted = values.slice(0, count).sort();
  const at = (q: number): number => sorted[Math.min(count - 1, Math.max(0, Math.ceil(q * count) - 1))]!;
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), mean: sum / count, max: sorted[count - 1]! };
}

const headerEnd = Buffer.from('\r\n\r\n');

/**
 * Length of the first complete HTTP/1.1 response in `data` and its status, or undefined while
 * incomplete. Answers must carry Content-Length (uWebSockets.js always sends it for a whole body).
 */
export function parseResponse(data: Buffer): { status: number; length: number } | undefined {
  const end = data.indexOf(headerEnd);
  if (end < 0) return undefined;
  const head = data.toString('latin1', 0, end);
  const status = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (!status || !length) throw new Error(`unsupported HTTP answer: ${JSON.stringify(head.slice(0, 200))}`);
  const total = end + headerEnd.length + Number(length[1]);
  return data.length >= total ? { status: Number(status[1]), length: total } : undefined;
}

interface Connection {
  socket: net.Socket;
  received: Buffer;
  /** Scheduled send time of the request in flight (hrtime ns), or -1 when idle. */
  dueNs: number;
  alive: boolean;
}

const nowNs = (): number => Number(process.hrtime.bigint());

export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const { host, port, rate, bodies } = options;
  const requests = (bodies ?? [Buffer.alloc(0)]).map((body) =>
    Buffer.concat([
      Buffer.from(
        bodies
          ? `POST ${options.path} HTTP/1.1\r\nHost: ${host}:${port}\r\nContent-Type: ${options.contentType ?? 'application/octet-stream'}\r\nContent-Length: ${body.length}\r\n\r\n`
          : `GET ${options.path} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`,
        'latin1',
      ),
      body,
    ]),
  );
  const total = Math.floor(rate * options.durationSeconds);
  const latency = new Float64Array(total);
  const sendLag = new Float64Array(total);
  let ok = 0;
  let sent = 0;
  let non2xx = 0;
  let dropped = 0;
  let errors = 0;
  let inFlight = 0;
  let peakInFlight = 0;
  let connectionsOpened = 0;
  const idle: Connection[] = [];
  const open = new Set<Connection>();
  let drained: (() => void) | undefined;

  const finish = (connection: Connection): void => {
    connection.dueNs = -1;
    inFlight--;
    if (inFlight === 0 && drained) drained();
  };
  const fail = (connection: Connection): void => {
    if (!connection.alive) return;
    connection.alive = false;
    open.delete(connection);
    const at = idle.indexOf(connection);
    if (at >= 0) idle.splice(at, 1);
    connection.socket.destroy();
    if (connection.dueNs >= 0) {
      errors++;
      finish(connection);
    }
  };
  const connect = (): Connection => {
    const connection: Connection = { socket: net.connect({ host, port, noDelay: true }), received: Buffer.alloc(0), dueNs: -1, alive: true };
    connectionsOpened++;
    open.add(connection);
    connection.socket.on('data', (chunk: Buffer) => {
      connection.received = connection.received.length === 0 ? chunk : Buffer.concat([connection.received, chunk]);
      let answer;
      try {
        answer = parseResponse(connection.received);
      } catch {
        fail(connection);
        return;
      }
      if (!answer) return;
      if (connection.dueNs < 0 || answer.length !== connection.received.length) {
        fail(connection); // bytes nobody asked for: the connection's framing is lost
        return;
      }
      connection.received = Buffer.alloc(0);
      if (answer.status >= 200 && answer.status < 300) latency[ok++] = (nowNs() - connection.dueNs) / 1e6;
      else non2xx++;
      finish(connection);
      idle.push(connection);
    });
    connection.socket.on('error', () => fail(connection));
    connection.socket.on('close', () => fail(connection));
    return connection;
  };

  await Promise.all(
    Array.from({ length: Math.min(options.initialConnections, options.maxConnections) }, () => {
      const connection = connect();
      return new Promise<void>((resolve, reject) => {
        connection.socket.once('connect', () => {
          idle.push(connection);
          resolve();
        });
        connection.socket.once('error', reject);
      });
    }),
  );

  const start = nowNs();
  let next = 0;
  const dispatch = (index: number, dueNs: number): void => {
    let connection = idle.pop();
    if (!connection) {
      if (open.size >= options.maxConnections) {
        dropped++;
        return;
      }
      connection = connect(); // the write waits in the socket until it connects
    }
    connection.dueNs = dueNs;
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    sendLag[sent++] = (nowNs() - dueNs) / 1e6;
    connection.socket.write(requests[index % requests.length]!);
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsed = nowNs() - start;
      while (next < total && scheduledOffsetNs(next, rate) <= elapsed) {
        dispatch(next, start + scheduledOffsetNs(next, rate));
        next++;
      }
      if (next >= total) {
        resolve();
        return;
      }
      setTimeout(tick, Math.max(0, Math.floor((scheduledOffsetNs(next, rate) - (nowNs() - start)) / 1e6)));
    };
    tick();
  });
  if (inFlight > 0) {
    await new Promise<void>((resolve) => {
      drained = resolve;
      setTimeout(resolve, options.drainMs ?? 5000).unref();
    });
  }
  const timedOut = inFlight;
  for (const connection of [...open]) {
    connection.dueNs = -1; // unanswered requests are counted as timed out, not as errors
    fail(connection);
  }
  return {
    offeredRate: rate,
    achievedRate: ok / options.durationSeconds,
    scheduled: total,
    ok,
    non2xx,
    dropped,
    errors,
    timedOut,
    latencyMs: percentiles(latency, ok),
    sendLagMs: percentiles(sendLag, sent),
    connectionsOpened,
    peakInFlight,
  };
}
