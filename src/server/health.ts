// Operations routes: liveness, readiness and Prometheus metrics.
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';

import type { RouteContext } from './context';
import { toRefusal } from './refusal';

export interface Readiness {
  ready: boolean;
  reason: string;
}

export function registerHealthRoutes(app: TemplatedApp, context: RouteContext, readiness: () => Readiness): void {
  const { metrics, log, lifecycle } = context;
  app.get('/metrics', (res) => {
    const exchange = context.begin(res, 'metrics');
    metrics.registry.metrics().then(
      (text) => exchange.send(200, metrics.registry.contentType, text),
      (error: unknown) => exchange.fail(toRefusal(error, 'the metrics were not rendered', log)),
    );
  });

  const live = (res: HttpResponse) => context.begin(res, 'health').send(200, 'text/plain', 'ok\n');
  app.get('/livez', live);
  app.get('/healthz', live);
  app.get('/readyz', (res) => {
    const exchange = context.begin(res, 'health');
    const state = lifecycle.draining ? { ready: false, reason: 'draining' } : readiness();
    if (state.ready) return exchange.send(200, 'text/plain', 'ready\n');
    exchange.send(503, 'text/plain', `not ready: ${state.reason}\n`, { 'Retry-After': '1' });
  });
}
