// Operations routes: liveness, readiness and Prometheus metrics. They answer from the moment the
// daemon listens, before its model is loaded.
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';

import type { LoadProgress } from '../engine/load_progress';
import type { RouteContext } from './context';
import { toRefusal } from './refusal';

export interface Readiness {
  ready: boolean;
  reason: string;
}

/** The /readyz body: while the start-up load runs, its stage and progress beside the reason. */
function readinessBody(state: Readiness, startup: LoadProgress): string {
  return JSON.stringify({ ...state, ...(startup.loading ? { startup: startup.state() } : {}) });
}

export function registerHealthRoutes(app: TemplatedApp, context: RouteContext, readiness: () => Readiness): void {
  const { metrics, lifecycle } = context;
  app.get('/metrics', (res, req) => {
    const exchange = context.begin(res, req, 'metrics');
    metrics.registry.metrics().then(
      (text) => exchange.send(200, metrics.registry.contentType, text),
      (error: unknown) => exchange.fail(toRefusal(error, 'the metrics were not rendered', exchange.log)),
    );
  });

  const live = (res: HttpResponse, req: HttpRequest) => context.begin(res, req, 'health').send(200, 'text/plain', 'ok\n');
  app.get('/livez', live);
  app.get('/healthz', live);
  app.get('/readyz', (res, req) => {
    const exchange = context.begin(res, req, 'health');
    const state = lifecycle.unready ? { ready: false, reason: 'draining' } : lifecycle.startup.loading ? { ready: false, reason: 'starting' } : readiness();
    const body = readinessBody(state, lifecycle.startup);
    if (state.ready) return exchange.send(200, 'application/json', body);
    exchange.send(503, 'application/json', body, { 'Retry-After': '1' });
  });
}
