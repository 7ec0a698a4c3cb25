// Admin JSON routes (bearer token from config): the serving model and its hot swap.
import { timingSafeEqual } from 'node:crypto';

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';

import type { Config } from '../config';
import { ModelDirError } from '../engine/model_dir';
import { type ModelSwapper, removeChallenger, SwapInProgressError } from '../engine/model_swap';
import type { Serving } from '../engine/serving';
import { RequestError } from '../errors';
import type { Logger } from '../log';
import { localDay } from '../money/local_day';
import type { SpendStore } from '../money/spend_store';
import type { Route } from '../metrics';
import type { DecisionContext } from '../pipeline/ad_decision';
import { readBody } from './body';
import type { Exchange } from './exchange';

export interface AdminDeps {
  config: Config;
  log: Logger;
  decision: DecisionContext;
  swapper: ModelSwapper;
  spend: SpendStore;
  begin: (res: HttpResponse, route: Route) => Exchange;
}

function authorised(config: Config, header: string): RequestError | undefined {
  if (config.adminToken === '') return new RequestError(403, 'admin_disabled', 'the admin API is disabled: set adminToken');
  const given = Buffer.from(header);
  const expected = Buffer.from(`Bearer ${config.adminToken}`);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return new RequestError(401, 'unauthorized', 'missing or wrong bearer token');
  return undefined;
}

function sendJson(exchange: Exchange, body: unknown): void {
  exchange.send(200, 'application/json', JSON.stringify(body));
}

export function registerAdminRoutes(app: TemplatedApp, deps: AdminDeps): void {
  const { config, log, decision, swapper } = deps;
  const describe = () => {
    const about = (serving: Serving | undefined) => (serving ? { version: serving.modelVersion, dir: serving.modelDir, ...serving.engine.stats() } : null);
    return {
      serving: about(decision.serving),
      challenger: decision.challenger ? { ...about(decision.challenger.serving), share: decision.challenger.share } : null,
      loading: swapper.loadingDir ?? null,
    };
  };

  app.get('/v1/admin/models', (res: HttpResponse, req: HttpRequest) => {
    const exchange = deps.begin(res, 'admin');
    const denied = authorised(config, req.getHeader('authorization'));
    if (denied) return exchange.fail(denied);
    sendJson(exchange, describe());
  });

  // Spend per campaign from the ledger, in micros (nanos / 1000): lifetime and today (UTC).
  app.get('/v1/admin/spend', (res: HttpResponse, req: HttpRequest) => {
    const exchange = deps.begin(res, 'admin');
    const denied = authorised(config, req.getHeader('authorization'));
    if (denied) return exchange.fail(denied);
    const now = Date.now();
    const campaigns: Record<string, { lifetimeMicros: number; todayMicros: number; exhausted: boolean }> = {};
    for (const [campaign, nanos] of deps.spend.state.lifetimeNanos) {
      campaigns[campaign] = {
        lifetimeMicros: nanos / 1000,
        todayMicros: (deps.spend.state.dailyNanos.get(`${campaign}@${localDay(now, decision.serving?.catalog.campaignTimeZone.get(campaign)).day}`) ?? 0) / 1000,
        exhausted: decision.serving?.budgets.isExhausted(campaign) ?? false,
      };
    }
    sendJson(exchange, { events: deps.spend.eventCount(), campaigns });
  });

  app.del('/v1/admin/models/b', (res: HttpResponse, req: HttpRequest) => {
    const exchange = deps.begin(res, 'admin');
    const denied = authorised(config, req.getHeader('authorization'));
    if (denied) return exchange.fail(denied);
    if (!removeChallenger(decision)) return exchange.fail(new RequestError(404, 'not_found', 'no A/B test is running'));
    log.info('A/B test ended');
    sendJson(exchange, describe());
  });

  app.post('/v1/admin/models', (res: HttpResponse, req: HttpRequest) => {
    const exchange = deps.begin(res, 'admin');
    const denied = authorised(config, req.getHeader('authorization'));
    if (denied) return exchange.fail(denied);
    const length = req.getHeader('content-length');
    readBody(res, { declaredLength: /^\d+$/.test(length) ? Number(length) : undefined, maxBytes: 64 * 1024 }, (body) => {
      let fields: { dir?: unknown; arm?: unknown; share?: unknown };
      try {
        fields = JSON.parse(Buffer.from(body).toString('utf8')) as typeof fields;
      } catch {
        return exchange.fail(new RequestError(400, 'bad_request', 'body must be JSON: {"dir": "<model directory>", "arm"?: "a" | "b", "share"?: 0..1}'));
      }
      const { dir, arm = 'a', share = 0.1 } = fields ?? {};
      if (typeof dir !== 'string' || dir.length === 0) return exchange.fail(new RequestError(422, 'invalid_request', '"dir" must name a model directory'));
      if (arm !== 'a' && arm !== 'b') return exchange.fail(new RequestError(422, 'invalid_request', '"arm" must be "a" or "b"'));
      if (typeof share !== 'number' || !(share > 0 && share < 1)) return exchange.fail(new RequestError(422, 'invalid_request', '"share" must be between 0 and 1'));
      log.info('model swap requested', { dir, arm, share });
      swapper.swap(dir, arm, share).then(
        (serving) => {
          log.info('model swapped in', { version: serving.modelVersion, dir: serving.modelDir });
          sendJson(exchange, describe());
        },
        (error: Error) => {
          log.warn('model swap failed', { dir, error: error.message });
          if (error instanceof SwapInProgressError) return exchange.fail(new RequestError(409, 'conflict', error.message));
          exchange.fail(new RequestError(422, 'invalid_model', error instanceof ModelDirError ? error.message : `cannot load model: ${error.message}`));
        },
      );
    }, () => exchange.fail(new RequestError(413, 'too_large', 'admin request body over 64 KiB'), {}, true));
  });
}
