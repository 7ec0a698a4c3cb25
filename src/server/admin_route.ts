// The shape of an admin route: every one is declared in a table (see admin.ts) and registered
// behind the one admin guard, so a handler here never checks the token itself.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

import type { ModelSwapper } from '../pipeline/model_swap';
import type { StoreSync } from '../pipeline/store_sync';
import { RequestError } from '../errors';
import type { Logger } from '../log';
import type { Money } from '../money/money';
import type { CatalogStore } from '../store/store';
import type { DecisionContext } from '../pipeline/ad_decision';
import { declaredLength, readBody } from './body';
import type { Exchange } from './exchange';
import { toRefusal } from './refusal';

export interface AdminDeps {
  log: Logger;
  decision: DecisionContext;
  swapper: ModelSwapper;
  money: Money;
  /** The catalog store every catalog edit is written to; serving follows it (sync). */
  store: CatalogStore;
  sync: StoreSync;
  /** Largest body of a catalog import, in bytes. */
  maxImportBytes: number;
}

/** One authorised admin request; `req` is alive only until the handler returns. */
export interface AdminCall {
  exchange: Exchange;
  res: HttpResponse;
  req: HttpRequest;
  deps: AdminDeps;
}

export interface AdminRoute {
  method: 'get' | 'post' | 'patch' | 'del';
  /** A uWS pattern; `:name` segments are read with req.getParameter. */
  pattern: string;
  handle(call: AdminCall): void;
}

const maxAdminBodyBytes = 64 * 1024;

/**
 * Reads the JSON body (at most 64 KiB) and hands it over parsed. A RequestError thrown by
 * `handle` is answered as it is; any other failure means the change was not recorded.
 */
export function readJson({ exchange, res, req, deps }: AdminCall, handle: (json: unknown) => void): void {
  const length = declaredLength(req, maxAdminBodyBytes);
  if (length instanceof RequestError) return exchange.failAndCloseNow(length);
  readBody(
    res,
    { declaredLength: length, maxBytes: maxAdminBodyBytes },
    (body) => {
      let json: unknown;
      try {
        json = JSON.parse(Buffer.from(body).toString('utf8'));
      } catch {
        return exchange.fail(new RequestError(400, 'bad_request', 'body is not valid JSON'));
      }
      try {
        handle(json);
      } catch (error) {
        exchange.fail(toRefusal(error, 'the change was not recorded', deps.log));
      }
    },
    () => exchange.fail(new RequestError(413, 'too_large', 'admin request body over 64 KiB'), {}, true),
  );
}

export function sendJson(exchange: Exchange, body: unknown): void {
  exchange.send(200, 'application/json', JSON.stringify(body));
}
