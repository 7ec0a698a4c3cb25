// Transport only: uWebSockets.js routes, body assembly and status codes. Request stages live in
// src/pipeline/.
import uWS from 'uWebSockets.js';

import type { Config } from '../config';
import { RequestError } from '../errors';
import type { Logger } from '../log';
import type { Metrics, Route } from '../metrics';
import { type AdDecision, type DecisionContext, decideAds } from '../pipeline/ad_decision';
import { type EventContext, parseEvent, recordEvent } from '../pipeline/record_event';
import { refusedRequestId } from '../pipeline/parse_request';
import { encodeAdResponse } from '../protocol/encode_response';
import { ResponseStatus } from '../protocol/schema';
import type { ModelSwapper } from '../pipeline/model_swap';
import { registerAdminRoutes } from './admin';
import type { CatalogChanges } from '../catalog/catalog_changes';
import { declaredLength, readBody } from './body';
import { Exchange, type InFlight } from './exchange';

export const flatbuffersContentType = 'application/x-flatbuffers';

export interface Readiness {
  ready: boolean;
  reason: string;
}

export interface ServerDeps {
  config: Config;
  metrics: Metrics;
  log: Logger;
  decision: DecisionContext;
  swapper: ModelSwapper;
  /** Durable campaign and ad edits of the admin API. */
  changes: CatalogChanges;
  events: EventContext;
  /** Whether the engine can take traffic, and why not. */
  readiness: () => Readiness;
}

export interface Server {
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish (at most `graceMs`), then closes every connection. */
  drain(graceMs: number): Promise<{ drained: boolean; abandoned: number }>;
}

// The trufflesuite build silently falls back to a pure-JS server when its binary does not load;
// we refuse that rather than serve at a fraction of the speed.
function requireNativeUws(): void {
  if (typeof (uWS as unknown as { getParts?: unknown }).getParts !== 'function') {
    throw new Error('uWebSockets.js native binary did not load for this Node.js build (the JS fallback is not supported)');
  }
}

function mediaType(header: string): string {
  return header.split(';', 1)[0]!.trim().toLowerCase();
}

export function startServer(deps: ServerDeps): Promise<Server> {
  requireNativeUws();
  const { config, metrics, log } = deps;
  const inFlight: InFlight = { count: 0 };
  let draining = false;
  const app = uWS.App();
  const begin = (res: uWS.HttpResponse, route: Route): Exchange =>
    new Exchange(res, route, process.hrtime.bigint(), metrics, inFlight);
  const drainingError = () => new RequestError(503, 'draining', 'server is shutting down; retry on another replica');
  let decisions = 0;
  /** Runs an ad decision unless maxConcurrentDecisions are in flight: excess load is shed at once so admitted requests keep their latency. */
  const decide = (body: Uint8Array): Promise<AdDecision> => {
    if (decisions >= config.maxConcurrentDecisions) {
      return Promise.reject(new RequestError(503, 'overloaded', `${decisions} ad decisions in flight (maxConcurrentDecisions); retry shortly`));
    }
    decisions++;
    return decideAds(body, deps.decision).finally(() => decisions--);
  };
  /** One JSON line per sampled ad request; server faults are always logged by their handlers. */
  const logDecision = (transport: 'http' | 'ws', status: number, started: bigint, answer?: AdDecision, error?: RequestError): void => {
    if (Math.random() >= config.logSampleRate) return;
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log.info('ad request', { transport, status, ms: Math.round(ms * 1000) / 1000, ...(answer ? { requestId: answer.requestId, placement: answer.placement, winners: answer.winners } : { error: error?.code }) });
  };

  app.post('/v1/ads', (res, req) => {
    const exchange = begin(res, 'ads');
    // HttpRequest dies when this handler returns: read every header now.
    const contentType = req.getHeader('content-type');
    const length = declaredLength(req, config.maxBodyBytes);
    if (length instanceof RequestError) return exchange.failAndCloseNow(length);
    if (draining) return exchange.fail(drainingError(), { 'Retry-After': '1' }, true);
    if (mediaType(contentType) !== flatbuffersContentType) {
      return exchange.fail(
        new RequestError(415, 'unsupported_media_type', `Content-Type must be ${flatbuffersContentType} (got ${JSON.stringify(contentType)})`),
      );
    }
    const started = process.hrtime.bigint();
    const onBody = (body: Uint8Array): void => {
      decide(body).then(
        (answer) => {
          exchange.placement = answer.placement;
          exchange.send(200, flatbuffersContentType, answer.response);
          logDecision('http', 200, started, answer);
        },
        (error: unknown) => {
          if (error instanceof RequestError) {
            if (error.status === 503) metrics.shed.inc();
            logDecision('http', error.status, started, undefined, error);
            return exchange.fail(error, error.status === 503 ? { 'Retry-After': '1' } : {});
          }
          log.error('ad request failed', { error: (error as Error).message });
          exchange.send(500, 'application/json', JSON.stringify({ error: { code: 'internal', message: 'internal error' } }));
        },
      );
    };
    readBody(res, { declaredLength: length, maxBytes: config.maxBodyBytes }, onBody, () =>
      exchange.fail(new RequestError(413, 'too_large', `body exceeds the limit of ${config.maxBodyBytes} bytes`), {}, true),
    );
  });

  // WebSocket: each binary frame is one AdRequest, answered by one AdResponse frame; requests are
  // pipelined and answers carry the request id (they may arrive out of order). A refused frame gets
  // an AdResponse with status Rejected, the HTTP-equivalent error_code and the frame's request id
  // when it passes the Verifier ('' otherwise).
  interface SocketState {
    open: boolean;
  }
  const sockets = new Set<uWS.WebSocket<SocketState>>();
  const observeWs = (started: bigint, placement: string, status: string): void =>
    metrics.requestDuration.observe({ route: 'ws', placement, status }, Number(process.hrtime.bigint() - started) / 1e9);
  const reject = (ws: uWS.WebSocket<SocketState>, started: bigint, error: RequestError, body?: Uint8Array): void => {
    if (ws.getUserData().open) {
      const requestId = body ? refusedRequestId(body) : '';
      ws.send(encodeAdResponse({ requestId, status: ResponseStatus.Rejected, message: error.message, errorCode: error.status }), true);
    }
    observeWs(started, 'none', String(error.status));
  };
  app.ws<SocketState>('/v1/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: config.maxBodyBytes,
    maxBackpressure: 4 * 1024 * 1024,
    closeOnBackpressureLimit: 1,
    idleTimeout: 120,
    upgrade: (res, req, context) => {
      if (draining) {
        res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '1').end('server is shutting down');
        return;
      }
      res.upgrade<SocketState>({ open: true }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      sockets.add(ws);
    },
    message: (ws, message, isBinary) => {
      const started = process.hrtime.bigint();
      if (!isBinary) return reject(ws, started, new RequestError(415, 'unsupported_media_type', 'send AdRequest FlatBuffers as binary frames'));
      // uWS neuters `message` when this handler returns.
      const body = new Uint8Array(message.slice(0));
      inFlight.count++;
      decide(body)
        .then(
          (answer) => {
            if (ws.getUserData().open) ws.send(answer.response, true);
            observeWs(started, answer.placement, '200');
            logDecision('ws', 200, started, answer);
          },
          (error: unknown) => {
            if (error instanceof RequestError) {
              if (error.status === 503) metrics.shed.inc();
              logDecision('ws', error.status, started, undefined, error);
              return reject(ws, started, error, body);
            }
            log.error('ad request failed', { error: (error as Error).message });
            reject(ws, started, new RequestError(400, 'internal', 'internal error'), body);
          },
        )
        .finally(() => inFlight.count--);
    },
    close: (ws) => {
      ws.getUserData().open = false;
      sockets.delete(ws);
    },
  });

  app.post('/v1/events', (res, req) => {
    const exchange = begin(res, 'events');
    const contentType = mediaType(req.getHeader('content-type'));
    const length = declaredLength(req, config.maxBodyBytes);
    if (length instanceof RequestError) return exchange.failAndCloseNow(length);
    if (draining) return exchange.fail(drainingError(), { 'Retry-After': '1' }, true);
    const binary = contentType === flatbuffersContentType;
    if (!binary && contentType !== 'application/json') {
      return exchange.fail(new RequestError(415, 'unsupported_media_type', `Content-Type must be ${flatbuffersContentType} or application/json`));
    }
    const tooLarge = () => exchange.fail(new RequestError(413, 'too_large', `body exceeds the limit of ${config.maxBodyBytes} bytes`), {}, true);
    readBody(res, { declaredLength: length, maxBytes: config.maxBodyBytes }, (body) => {
      let input;
      try {
        input = parseEvent(body, binary);
      } catch (error) {
        return exchange.fail(error as RequestError);
      }
      recordEvent(input, deps.events, Date.now()).then(
        (recorded) => exchange.send(200, 'application/json', JSON.stringify(recorded)),
        (error: unknown) => {
          if (error instanceof RequestError) return exchange.fail(error);
          log.error('event failed', { error: (error as Error).message });
          exchange.fail(new RequestError(503, 'ledger_unavailable', 'the event was not recorded; retry'), { 'Retry-After': '1' });
        },
      );
    }, tooLarge);
  });

  app.any('/v1/ads', (res) => {
    begin(res, 'ads').fail(new RequestError(405, 'method_not_allowed', 'use POST with an AdRequest FlatBuffer body'), { Allow: 'POST' });
  });

  app.get('/metrics', (res) => {
    const exchange = begin(res, 'metrics');
    metrics.registry.metrics().then(
      (text) => exchange.send(200, metrics.registry.contentType, text),
      (error: Error) => {
        log.error('metrics rendering failed', { error: error.message });
        exchange.send(500, 'application/json', JSON.stringify({ error: { code: 'internal', message: error.message } }));
      },
    );
  });

  const live = (res: uWS.HttpResponse) => begin(res, 'health').send(200, 'text/plain', 'ok\n');
  app.get('/livez', live);
  app.get('/healthz', live);
  app.get('/readyz', (res) => {
    const exchange = begin(res, 'health');
    const readiness = draining ? { ready: false, reason: 'draining' } : deps.readiness();
    if (readiness.ready) return exchange.send(200, 'text/plain', 'ready\n');
    exchange.send(503, 'text/plain', `not ready: ${readiness.reason}\n`, { 'Retry-After': '1' });
  });

  registerAdminRoutes(app, { config, log, decision: deps.decision, swapper: deps.swapper, changes: deps.changes, spend: deps.events.spend, begin });

  app.any('/*', (res, req) => {
    const target = `${req.getMethod().toUpperCase()} ${req.getUrl()}`;
    begin(res, 'other').fail(new RequestError(404, 'not_found', `no route for ${target}`));
  });

  return new Promise((resolve, reject) => {
    app.listen(config.host, config.port, (token) => {
      if (!token) return reject(new Error(`cannot listen on ${config.host}:${config.port}`));
      const port = uWS.us_socket_local_port(token as unknown as uWS.us_socket);
      resolve({
        port,
        async drain(graceMs) {
          draining = true;
          uWS.us_listen_socket_close(token);
          const deadline = Date.now() + graceMs;
          while (inFlight.count > 0 && Date.now() < deadline) await new Promise((done) => setTimeout(done, 10));
          const abandoned = inFlight.count;
          for (const ws of sockets) ws.end(1001, 'server shutting down');
          // Closes keep-alive connections too, which closing the listen socket leaves open.
          (app as unknown as { close(): void }).close();
          return { drained: abandoned === 0, abandoned };
        },
      });
    });
  });
}
