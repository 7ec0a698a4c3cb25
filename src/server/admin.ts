// Admin JSON routes: every one is declared in `adminRoutes` and registered behind the one guard,
// the bearer token from config, so no route can be reached without it.
import { timingSafeEqual } from 'node:crypto';

import type { TemplatedApp } from 'uWebSockets.js';

import type { Config } from '../config';
import { RequestError } from '../errors';
import { catalogRoutes } from './admin_catalog';
import { campaignRoutes } from './admin_campaigns';
import { importRoutes } from './admin_import';
import { modelRoutes } from './admin_models';
import type { AdminDeps, AdminRoute } from './admin_route';
import { reportRoutes } from './admin_reports';
import { spendRoutes } from './admin_spend';
import { type RouteContext, startingError } from './context';

export const adminRoutes: readonly AdminRoute[] = [...spendRoutes, ...reportRoutes, ...campaignRoutes, ...modelRoutes, ...catalogRoutes, ...importRoutes];

/** The admin guard: why a request with this Authorization header is refused, or undefined. */
export function adminRefusal(config: Config, header: string): RequestError | undefined {
  if (config.adminToken === '') return new RequestError(403, 'admin_disabled', 'the admin API is disabled: set adminToken');
  const given = Buffer.from(header);
  const expected = Buffer.from(`Bearer ${config.adminToken}`);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return new RequestError(401, 'unauthorized', 'missing or wrong bearer token');
  return undefined;
}

export function registerAdminRoutes(app: TemplatedApp, context: RouteContext, deps: AdminDeps): void {
  for (const route of adminRoutes) {
    app[route.method](route.pattern, (res, req) => {
      const exchange = context.begin(res, 'admin');
      const denied = adminRefusal(context.config, req.getHeader('authorization'));
      if (denied) return exchange.fail(denied);
      // Every admin route reads or edits the catalog, or loads a model, which the start-up load owns until it finishes.
      const starting = startingError(context.lifecycle);
      if (starting) return exchange.fail(starting);
      route.handle({ exchange, res, req, deps });
    });
  }
}
