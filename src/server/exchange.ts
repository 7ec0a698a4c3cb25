// One HTTP request/response pair on uWebSockets.js, with the lifetime rules that library imposes:
// an abort handler before any asynchronous step, no touching `res` after abort or end, and every
// write corked. Counts itself in flight (for draining) and observes its duration once. Every
// answer carries the request's id in X-Request-Id, the id its log lines carry.
import type { HttpResponse } from 'uWebSockets.js';

import type { ErrorStatus, RequestError } from '../errors';
import type { Logger } from '../log';
import type { Metrics, Route } from '../metrics';
import { refusalHeaders } from './refusal';

const reasons: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/** uWS's per-loop cork buffer (LoopData::CORK_BUFFER_SIZE), which holds every write a handler makes. */
const corkBufferBytes = 16 * 1024;

export type Status = 200 | 201 | ErrorStatus;

function errorBody(error: RequestError): string {
  return JSON.stringify({ error: { code: error.code, message: error.message, ...(error.field === undefined ? {} : { field: error.field }) } });
}

/** An answer written in pieces, for bodies too large to build as one string. */
export interface ResponseStream {
  /** Resolves once uWS can take more: true, or false when the client has gone (stop writing). */
  write(chunk: string): Promise<boolean>;
  end(): void;
  /** Cuts the connection, so the client sees a truncated answer rather than a complete one. */
  abort(): void;
}

export interface InFlight {
  count: number;
}

export class Exchange {
  aborted = false;
  private finished = false;
  /** Wakes a stream waiting for the socket to drain when the client goes away instead. */
  private onAbortedWhileWaiting: (() => void) | undefined;
  /** Placement label for the duration metric, once the request has been parsed. */
  placement = 'none';
  private requestLog: Logger | undefined;

  constructor(
    readonly res: HttpResponse,
    readonly route: Route,
    /** The caller's X-Request-Id when it is sane, else one made for this request; an ad answer swaps in its AdRequest's id. */
    public requestId: string,
    private readonly serverLog: Logger,
    private readonly startedNs: bigint,
    private readonly metrics: Metrics,
    private readonly inFlight: InFlight,
  ) {
    inFlight.count++;
    res.onAborted(() => {
      this.aborted = true;
      this.complete('aborted');
      this.onAbortedWhileWaiting?.();
    });
  }

  /** The logger for lines about this request: each carries its id. */
  get log(): Logger {
    this.requestLog ??= this.serverLog.child({ requestId: this.requestId });
    return this.requestLog;
  }

  get open(): boolean {
    return !this.aborted && !this.finished;
  }

  send(status: Status, contentType: string, body: string | Uint8Array, headers: Record<string, string> = {}, closeConnection = false): void {
    if (!this.open) return;
    this.res.cork(() => {
      this.res.writeStatus(`${status} ${reasons[status]}`).writeHeader('Content-Type', contentType).writeHeader('X-Request-Id', this.requestId);
      for (const [name, value] of Object.entries(headers)) this.res.writeHeader(name, value);
      this.res.end(body, closeConnection);
    });
    this.complete(String(status));
  }

  /** Begins a streamed answer with `status`; uWS sends it chunked. */
  stream(status: Status, contentType: string, headers: Record<string, string> = {}): ResponseStream {
    if (this.open) {
      this.res.cork(() => {
        this.res.writeStatus(`${status} ${reasons[status]}`).writeHeader('Content-Type', contentType).writeHeader('X-Request-Id', this.requestId);
        for (const [name, value] of Object.entries(headers)) this.res.writeHeader(name, value);
      });
    }
    return {
      write: (chunk) => {
        if (!this.open) return Promise.resolve(false);
        let drained = true;
        this.res.cork(() => {
          drained = this.res.write(chunk);
        });
        if (drained) return Promise.resolve(true);
        // uWS keeps the chunk buffered; waiting for it to drain bounds what an export holds in memory.
        return new Promise((resolve) => {
          this.onAbortedWhileWaiting = () => resolve(false);
          this.res.onWritable(() => {
            this.onAbortedWhileWaiting = undefined;
            resolve(this.open);
            return true;
          });
        });
      },
      end: () => {
        if (!this.open) return;
        this.res.cork(() => this.res.end());
        this.complete(String(status));
      },
      abort: () => {
        if (this.open) this.res.close();
      },
    };
  }

  /** Answers with a JSON error body that says what was wrong, and the headers its status calls for. */
  fail(error: RequestError, headers: Record<string, string> = {}, closeConnection = false): void {
    this.send(error.status, 'application/json', errorBody(error), { ...refusalHeaders(error), ...headers }, closeConnection);
  }

  /**
   * Answers with a JSON error and closes the connection before this request handler returns, for
   * a request with an unusable Content-Length. uWS's parser refuses most of those (over nine
   * digits, not a number) right after the handler returns: it closes the socket and drops whatever
   * is still corked, and inside a request handler every write is corked. A body larger than the
   * cork buffer is written straight to the socket, so the error is padded with trailing spaces
   * (still valid JSON) to that size.
   */
  failAndCloseNow(error: RequestError): void {
    this.send(error.status, 'application/json', errorBody(error).padEnd(corkBufferBytes, ' '), refusalHeaders(error), true);
  }

  private complete(status: string): void {
    if (this.finished) return;
    this.finished = true;
    this.inFlight.count--;
    const seconds = Number(process.hrtime.bigint() - this.startedNs) / 1e9;
    this.metrics.requestDuration.observe({ route: this.route, placement: this.placement, status }, seconds);
  }
}
