// What every route family receives from startServer: configuration, metrics, the logger, the
// server's lifecycle (draining, requests in flight) and the one way to begin an HTTP exchange.
import { randomUUID } from 'node:crypto';

import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

import type { Config } from '../config';
import type { LoadProgress } from '../engine/load_progress';
import { RequestError } from '../errors';
import type { Logger } from '../log';
import type { Metrics, Route } from '../metrics';
import { declaredLength } from './body';
import { Exchange, type InFlight } from './exchange';

export const flatbuffersContentType = 'application/x-flatbuffers';

/**
 * A request id that may go back in a header and into a log line as it is: 1..128 printable ASCII
 * characters, so no header splitting and no line a collector would misread.
 */
export function isSaneRequestId(id: string): boolean {
  return /^[\x21-\x7e]{1,128}$/.test(id);
}

/**
 * Shared by every route. Shutdown turns `unready` first (/readyz answers 503, everything else is
 * still served for drainDelayMs), then `draining` (new requests are refused, the listener closes).
 */
export interface Lifecycle {
  /** The start-up load; until it finishes, ad, event and admin requests answer 503 `starting`. */
  readonly startup: LoadProgress;
  unready: boolean;
  draining: boolean;
  /** HTTP exchanges and WebSocket decisions not yet answered. */
  readonly inFlight: InFlight;
}

export class RouteContext {
  readonly lifecycle: Lifecycle;

  constructor(
    readonly config: Config,
    readonly metrics: Metrics,
    readonly log: Logger,
    startup: LoadProgress,
  ) {
    this.lifecycle = { startup, unready: false, draining: false, inFlight: { count: 0 } };
  }

  /** Reads the caller's X-Request-Id, so it must run before the request handler returns. */
  begin(res: HttpResponse, req: HttpRequest, route: Route): Exchange {
    const given = req.getHeader('x-request-id');
    const requestId = isSaneRequestId(given) ? given : randomUUID();
    return new Exchange(res, route, requestId, this.log, process.hrtime.bigint(), this.metrics, this.lifecycle.inFlight);
  }
}

function drainingError(): RequestError {
  return new RequestError(503, 'draining', 'server is shutting down; retry on another replica');
}

/** The refusal of a request that needs the model (or its catalog) while the start-up load runs. */
export function startingError(lifecycle: Lifecycle): RequestError | undefined {
  if (!lifecycle.startup.loading) return undefined;
  const { stage, seconds } = lifecycle.startup.state();
  return new RequestError(503, 'starting', `adserve is starting (${stage}, ${seconds} s so far) and serves once /readyz answers 200; retry shortly`);
}

function mediaType(header: string): string {
  return header.split(';', 1)[0]!.trim().toLowerCase();
}

interface OpenedPost {
  exchange: Exchange;
  /** The Content-Type header as sent, and its media type in lower case. */
  contentType: string;
  mediaType: string;
  declaredLength: number | undefined;
}

/**
 * Begins a POST that carries a body: reads its headers while `req` is alive, and refuses an
 * unusable Content-Length (closing the connection at once), a draining server or one still
 * starting. Undefined once it has answered.
 */
export function openPost(context: RouteContext, res: HttpResponse, req: HttpRequest, route: Route): OpenedPost | undefined {
  const exchange = context.begin(res, req, route);
  const contentType = req.getHeader('content-type');
  const length = declaredLength(req, context.config.maxBodyBytes);
  if (length instanceof RequestError) return void exchange.failAndCloseNow(length);
  if (context.lifecycle.draining) return void exchange.fail(drainingError(), {}, true);
  const starting = startingError(context.lifecycle);
  if (starting) return void exchange.fail(starting);
  return { exchange, contentType, mediaType: mediaType(contentType), declaredLength: length };
}
