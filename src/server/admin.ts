// Admin JSON routes (bearer token from config): the serving model and its hot swap, spend, and
// campaign and ad edits (status, bid, budgets, pacing, frequency cap, time zone), which take effect
// on the next request and outlive restarts and model swaps.
import { timingSafeEqual } from 'node:crypto';

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';

import type { Config } from '../config';
import { ModelDirError } from '../engine/model_dir';
import { type ModelSwapper, removeChallenger, SwapInProgressError } from '../pipeline/model_swap';
import { applyAdStatus, applyCampaign, type Serving } from '../engine/serving';
import type { CatalogChanges } from '../catalog/catalog_changes';
import { RequestError } from '../errors';
import type { Logger } from '../log';
import { localDay } from '../money/local_day';
import type { SpendStore } from '../money/spend_store';
import type { Route } from '../metrics';
import type { DecisionContext } from '../pipeline/ad_decision';
import { declaredLength, readBody } from './body';
import type { Exchange } from './exchange';

export interface AdminDeps {
  config: Config;
  log: Logger;
  decision: DecisionContext;
  swapper: ModelSwapper;
  changes: CatalogChanges;
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

  const servings = (): Serving[] => [decision.serving, decision.challenger?.serving].filter((serving): serving is Serving => serving !== undefined);
  // Spend in micros (nanos / 1000): lifetime and today in the campaign's time zone.
  const spendOf = (campaign: string, now: number) => ({
    lifetimeMicros: (deps.spend.state.lifetimeNanos.get(campaign) ?? 0) / 1000,
    todayMicros: (deps.spend.state.dailyNanos.get(`${campaign}@${localDay(now, decision.serving?.catalog.campaignTimeZone.get(campaign)).day}`) ?? 0) / 1000,
    exhausted: decision.serving?.budgets.isExhausted(campaign) ?? false,
  });
  const campaignView = (serving: Serving, id: string, now: number) => ({
    ...serving.catalog.campaigns.get(id)!,
    ads: serving.catalog.campaignAds.get(id)?.length ?? 0,
    ...spendOf(id, now),
  });
  /** Runs `handle` for an authorised request with arm A's model loaded. */
  const withCatalog = (res: HttpResponse, req: HttpRequest, handle: (exchange: Exchange, serving: Serving) => void): void => {
    const exchange = deps.begin(res, 'admin');
    const denied = authorised(config, req.getHeader('authorization'));
    if (denied) return exchange.fail(denied);
    if (!decision.serving) return exchange.fail(new RequestError(503, 'no_engine', 'no model is loaded, so there is no catalog'));
    handle(exchange, decision.serving);
  };
  /** Reads a JSON body (at most 64 KiB) and hands it over parsed. */
  const withJson = (res: HttpResponse, req: HttpRequest, exchange: Exchange, handle: (json: unknown) => void): void => {
    const maxBytes = 64 * 1024;
    const length = declaredLength(req, maxBytes);
    if (length instanceof RequestError) return exchange.failAndCloseNow(length);
    readBody(res, { declaredLength: length, maxBytes }, (body) => {
      let json: unknown;
      try {
        json = JSON.parse(Buffer.from(body).toString('utf8'));
      } catch {
        return exchange.fail(new RequestError(400, 'bad_request', 'body is not valid JSON'));
      }
      try {
        handle(json);
      } catch (error) {
        if (error instanceof RequestError) return exchange.fail(error);
        log.error('admin change failed', { error: (error as Error).message });
        exchange.fail(new RequestError(503, 'storage_unavailable', `the change was not recorded: ${(error as Error).message}`));
      }
    }, () => exchange.fail(new RequestError(413, 'too_large', 'admin request body over 64 KiB'), {}, true));
  };

  app.get('/v1/admin/spend', (res: HttpResponse, req: HttpRequest) => {
    const exchange = deps.begin(res, 'admin');
    const denied = authorised(config, req.getHeader('authorization'));
    if (denied) return exchange.fail(denied);
    const now = Date.now();
    const campaigns = Object.fromEntries(Array.from(deps.spend.state.lifetimeNanos.keys(), (campaign) => [campaign, spendOf(campaign, now)]));
    sendJson(exchange, { events: deps.spend.eventCount(), campaigns });
  });

  app.get('/v1/admin/campaigns', (res: HttpResponse, req: HttpRequest) =>
    withCatalog(res, req, (exchange, serving) => {
      const now = Date.now();
      sendJson(exchange, { campaigns: Array.from(serving.catalog.campaigns.keys(), (id) => campaignView(serving, id, now)) });
    }),
  );

  app.get('/v1/admin/campaigns/:id', (res: HttpResponse, req: HttpRequest) => {
    const id = req.getParameter(0);
    withCatalog(res, req, (exchange, serving) => {
      if (!serving.catalog.campaigns.has(id)) return exchange.fail(new RequestError(404, 'not_found', `no campaign ${id}`));
      sendJson(exchange, campaignView(serving, id, Date.now()));
    });
  });

  app.patch('/v1/admin/campaigns/:id', (res: HttpResponse, req: HttpRequest) => {
    const id = req.getParameter(0);
    withCatalog(res, req, (exchange, serving) =>
      withJson(res, req, exchange, (json) => {
        const campaign = deps.changes.editCampaign(serving.catalog, id, json);
        const now = Date.now();
        for (const each of servings()) applyCampaign(each, campaign, now);
        log.info('campaign edited', { campaign: id, edit: json });
        sendJson(exchange, campaignView(serving, id, now));
      }),
    );
  });

  app.patch('/v1/admin/ads/:id', (res: HttpResponse, req: HttpRequest) => {
    const id = req.getParameter(0);
    withCatalog(res, req, (exchange, serving) =>
      withJson(res, req, exchange, (json) => {
        const { ad, status } = deps.changes.editAd(serving.catalog, id, json);
        for (const each of servings()) applyAdStatus(each, id, status);
        log.info('ad edited', { ad: id, status });
        sendJson(exchange, { id, campaign_id: serving.catalog.campaignId[ad], status, serving: serving.catalog.active[ad] === 1 && !serving.budgets.isExhausted(serving.catalog.campaignId[ad]!) });
      }),
    );
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
    withJson(res, req, exchange, (json) => {
      const { dir, arm = 'a', share = 0.1 } = (json ?? {}) as { dir?: unknown; arm?: unknown; share?: unknown };
      if (typeof dir !== 'string' || dir.length === 0) throw new RequestError(422, 'invalid_request', '"dir" must name a model directory');
      if (arm !== 'a' && arm !== 'b') throw new RequestError(422, 'invalid_request', '"arm" must be "a" or "b"');
      if (typeof share !== 'number' || !(share > 0 && share < 1)) throw new RequestError(422, 'invalid_request', '"share" must be between 0 and 1');
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
    });
  });
}
