// GET /v1/ws: each binary frame is one AdRequest, answered by one AdResponse frame; requests are
// pipelined and answers carry the request id (they may arrive out of order). A refused frame gets
// an AdResponse with status Rejected, the HTTP status of its refusal as error_code, and the
// frame's request id when it passes the Verifier ('' otherwise).
import uWS, { type HttpRequest, type HttpResponse, type TemplatedApp, type us_socket_context_t, type WebSocket } from 'uWebSockets.js';

import { RequestError } from '../errors';
import { refusedRequestId } from '../pipeline/parse_request';
import { encodeAdResponse } from '../protocol/encode_response';
import { NoFillReason, ResponseStatus } from '../protocol/schema';
import { type RouteContext, startingError } from './context';
import type { Decisions } from './decisions';

interface SocketState {
  open: boolean;
}

/** Closes every open socket, for the end of a drain. */
export type EndSockets = () => void;

function observe(context: RouteContext, started: bigint, placement: string, status: number): void {
  context.metrics.requestDuration.observe({ route: 'ws', placement, status: String(status) }, Number(process.hrtime.bigint() - started) / 1e9);
}

/** Answers a refused frame with a Rejected AdResponse carrying the request id when the frame verified far enough to read it. */
function reject(context: RouteContext, ws: WebSocket<SocketState>, started: bigint, error: RequestError, body?: Uint8Array): void {
  if (ws.getUserData().open) {
    const requestId = body ? refusedRequestId(body) : '';
    const noFillReason = error.code === 'overloaded' ? NoFillReason.Capacity : NoFillReason.None;
    ws.send(
      encodeAdResponse({
        requestId,
        status: ResponseStatus.Rejected,
        message: error.message,
        errorCode: error.status,
        currency: context.config.currency,
        noFillReason,
      }),
      true,
    );
  }
  observe(context, started, 'none', error.status);
}

function upgrade(context: RouteContext, res: HttpResponse, req: HttpRequest, upgradeContext: us_socket_context_t): void {
  if (context.lifecycle.draining) {
    res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '1').end('server is shutting down');
    return;
  }
  res.upgrade<SocketState>(
    { open: true },
    req.getHeader('sec-websocket-key'),
    req.getHeader('sec-websocket-protocol'),
    req.getHeader('sec-websocket-extensions'),
    upgradeContext,
  );
}

export function registerAdsWebSocket(app: TemplatedApp, context: RouteContext, decisions: Decisions): EndSockets {
  const { config, lifecycle } = context;
  const sockets = new Set<WebSocket<SocketState>>();
  app.ws<SocketState>('/v1/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: config.maxBodyBytes,
    maxBackpressure: 4 * 1024 * 1024,
    closeOnBackpressureLimit: 1,
    idleTimeout: 120,
    upgrade: (res, req, upgradeContext) => upgrade(context, res, req, upgradeContext),
    open: (ws) => void sockets.add(ws),
    message: (ws, message, isBinary) => {
      const started = process.hrtime.bigint();
      if (!isBinary) return reject(context, ws, started, new RequestError(415, 'unsupported_media_type', 'send AdRequest FlatBuffers as binary frames'));
      // uWS neuters `message` when this handler returns.
      const body = new Uint8Array(message.slice(0));
      const starting = startingError(lifecycle);
      if (starting) return reject(context, ws, started, starting, body);
      lifecycle.inFlight.count++;
      void decisions
        .run(body, 'ws', started, {
          answer: (decision) => {
            if (ws.getUserData().open) ws.send(decision.response, true);
            observe(context, started, decision.placement, 200);
          },
          refuse: (error) => reject(context, ws, started, error, body),
        })
        .finally(() => lifecycle.inFlight.count--);
    },
    close: (ws) => {
      ws.getUserData().open = false;
      sockets.delete(ws);
    },
  });
  return () => {
    for (const ws of sockets) ws.end(1001, 'server shutting down');
  };
}
