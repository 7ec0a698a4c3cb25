// Admin campaign and ad routes: campaigns with their settings, ad count and spend, and where each
// stands on its pacing curve; edits of campaigns and ads, which take effect on the next request and
// outlive restarts and model swaps.
import { applyAdStatus, applyCampaign, type Serving } from '../engine/serving';
import { RequestError } from '../errors';
import { campaignPacing } from '../money/pacing_view';
import { type AdminCall, type AdminDeps, type AdminRoute, readJson, sendJson } from './admin_route';

/** Runs `handle` with arm A's model, whose catalog the campaigns and ads are read from. */
function withServing(call: AdminCall, handle: (serving: Serving) => void): void {
  const serving = call.deps.decision.serving;
  if (!serving) return call.exchange.fail(new RequestError(503, 'no_engine', 'no model is loaded, so there is no catalog'));
  handle(serving);
}

/** Every loaded model, so an edit reaches both arms of an A/B test. */
function servings(deps: AdminDeps): Serving[] {
  return [deps.decision.serving, deps.decision.challenger?.serving].filter((serving): serving is Serving => serving !== undefined);
}

function campaignView(deps: AdminDeps, serving: Serving, id: string, now: number) {
  return {
    ...serving.catalog.campaigns.get(id)!,
    ads: serving.catalog.campaignAds.get(id)?.length ?? 0,
    ...deps.money.spendOf(id, now),
  };
}

function listCampaigns(call: AdminCall): void {
  withServing(call, (serving) => {
    const now = Date.now();
    sendJson(call.exchange, { campaigns: Array.from(serving.catalog.campaigns.keys(), (id) => campaignView(call.deps, serving, id, now)) });
  });
}

/** Each campaign's daily budget, spend today and target curve by local hour. */
function listPacing(call: AdminCall): void {
  withServing(call, (serving) => {
    const now = Date.now();
    sendJson(call.exchange, { campaigns: Array.from(serving.catalog.campaigns.keys(), (id) => ({ id, ...campaignPacing(call.deps.money, id, now) })) });
  });
}

function showCampaign(call: AdminCall): void {
  const id = call.req.getParameter(0);
  withServing(call, (serving) => {
    if (!serving.catalog.campaigns.has(id)) return call.exchange.fail(new RequestError(404, 'not_found', `no campaign ${id}`));
    sendJson(call.exchange, campaignView(call.deps, serving, id, Date.now()));
  });
}

function editCampaign(call: AdminCall): void {
  const { deps } = call;
  const id = call.req.getParameter(0);
  withServing(call, (serving) =>
    readJson(call, (json) => {
      const campaign = deps.changes.editCampaign(serving.catalog, id, json);
      const now = Date.now();
      for (const each of servings(deps)) applyCampaign(each, campaign);
      deps.money.campaignChanged(id, now);
      deps.log.info('campaign edited', { campaign: id, edit: json });
      sendJson(call.exchange, campaignView(deps, serving, id, now));
    }),
  );
}

function editAd(call: AdminCall): void {
  const { deps } = call;
  const id = call.req.getParameter(0);
  withServing(call, (serving) =>
    readJson(call, (json) => {
      const { ad, status } = deps.changes.editAd(serving.catalog, id, json);
      for (const each of servings(deps)) applyAdStatus(each, id, status);
      deps.money.adChanged(id);
      deps.log.info('ad edited', { ad: id, status });
      const campaign = serving.catalog.campaignId[ad]!;
      sendJson(call.exchange, { id, campaign_id: campaign, status, serving: serving.catalog.active[ad] === 1 && !deps.money.isExhausted(campaign) });
    }),
  );
}

export const campaignRoutes: readonly AdminRoute[] = [
  { method: 'get', pattern: '/v1/admin/campaigns', handle: listCampaigns },
  { method: 'get', pattern: '/v1/admin/campaigns/:id', handle: showCampaign },
  { method: 'patch', pattern: '/v1/admin/campaigns/:id', handle: editCampaign },
  { method: 'patch', pattern: '/v1/admin/ads/:id', handle: editAd },
  { method: 'get', pattern: '/v1/admin/pacing', handle: listPacing },
];
