// What every route family receives from startServer: configuration, metrics, the logger, the
// server's lifecycle (draining, requests in flight) and the one way to begin an HTTP exchange.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

import type { Config } from '../config';
import { RequestError } from '../errors';
import type { Logger } from '../log';
import type { Metrics, Route } from '../metrics';
import { declaredLength } from './body';
import { Exchange, type InFlight } from './exchange';

export const flatbuffersContentType = 'application/x-flatbuffers';

/** Shared by every route; `draining` turns once, when shutdown begins. */
export interface Lifecycle {
  draining: boolean;
  /** HTTP exchanges and WebSocket decisions not yet answered. */
  readonly inFlight: InFlight;
}

export class RouteContext {
  readonly lifecycle: Lifecycle = { draining: false, inFlight: { count: 0 } };

  constructor(
    readonly config: Config,
    readonly metrics: Metrics,
    readonly log: Logger,
  ) {}

  begin(res: HttpResponse, route: Route): Exchange {
    return new Exchange(res, route, process.hrtime.bigint(), this.metrics, this.lifecycle.inFlight);
  }
}

function drainingError(): RequestError {
  return new RequestError(503, 'draining', 'server is shutting down; retry on another replica');
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
 * unusable Content-Length (closing the connection at once) or a draining server. Undefined once
 * it has answered.
 */
export function openPost(context: RouteContext, res: HttpResponse, req: HttpRequest, route: Route): OpenedPost | undefined {
  const exchange = context.begin(res, route);
  const contentType = req.getHeader('content-type');
  const length = declaredLength(req, context.config.maxBodyBytes);
  if (length instanceof RequestError) return void exchange.failAndCloseNow(length);
  if (context.lifecycle.draining) return void exchange.fail(drainingError(), {}, true);
  return { exchange, contentType, mediaType: mediaType(contentType), declaredLength: length };
}
