// Admin campaign and ad routes: campaigns with their settings, ad count and spend, and where each
// stands on its pacing curve; edits of campaigns and ads. An edit is written to the catalog store
// like any other catalog change, and answered once this replica serves by it (the others follow the
// store within a second).
import type { Serving } from '../engine/serving';
import { RequestError } from '../errors';
import { campaignPacing } from '../money/pacing_view';
import { type AdminCall, type AdminDeps, type AdminRoute, readJson, sendJson } from './admin_route';
import { toRefusal } from './refusal';
import type { EntityRows } from '../store/types';

/** The campaign fields this older route edits; the catalog API (/v1/admin/catalog/campaigns) edits every field. */
const editable = ['status', 'bid_micros', 'daily_budget_micros', 'lifetime_budget_micros', 'pacing', 'day_parting', 'frequency_cap', 'time_zone'];
/** Optional fields null removes (no lifetime budget, no day-parting, no cap, UTC). */
const removable = new Set(['lifetime_budget_micros', 'day_parting', 'frequency_cap', 'time_zone']);

/** Runs `handle` with arm A's model, whose catalog the campaigns and ads are read from. */
function withServing(call: AdminCall, handle: (serving: Serving) => void): void {
  const serving = call.deps.decision.serving;
  if (!serving) return call.exchange.fail(new RequestError(503, 'no_engine', 'no model is loaded, so there is no catalog'));
  handle(serving);
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

/** Writes `patch` to the store, waits until this replica serves by it, then answers `view()`. */
function editThroughStore<E extends 'campaign' | 'ad'>(call: AdminCall, entity: E, id: string, patch: object, view: (row: EntityRows[E]) => unknown): void {
  const { deps, exchange } = call;
  deps.store
    .update(entity, id, patch)
    .then(async (row) => {
      await deps.sync.caughtUp();
      deps.log.info(`${entity} edited`, { [entity]: id, edit: patch });
      sendJson(exchange, view(row));
    })
    .catch((error: unknown) => exchange.fail(toRefusal(error, 'the change was not recorded', deps.log)));
}

function editCampaign(call: AdminCall): void {
  const { deps } = call;
  const id = call.req.getParameter(0);
  withServing(call, (serving) =>
    readJson(call, (json) => {
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new RequestError(422, 'invalid_request', 'body must be a JSON object');
      const unknown = Object.keys(json).find((key) => !editable.includes(key));
      if (unknown !== undefined) throw new RequestError(422, 'invalid_request', `"${unknown}" cannot be edited here; editable: ${editable.join(', ')}`);
      const kept = Object.entries(json).find(([key, value]) => value === null && !removable.has(key));
      if (kept) throw new RequestError(422, 'invalid_request', `"${kept[0]}" cannot be removed`);
      editThroughStore(call, 'campaign', id, json, () => campaignView(deps, serving, id, Date.now()));
    }),
  );
}

function editAd(call: AdminCall): void {
  const { deps } = call;
  const id = call.req.getParameter(0);
  withServing(call, (serving) =>
    readJson(call, (json) => {
      const fields = json as { status?: unknown } | null;
      if (
        typeof fields !== 'object' ||
        fields === null ||
        Object.keys(fields).some((key) => key !== 'status') ||
        (fields.status !== 'active' && fields.status !== 'paused')
      ) {
        throw new RequestError(422, 'invalid_request', 'body must be {"status": "active" | "paused"}');
      }
      editThroughStore(call, 'ad', id, fields, (row) => {
        const ad = serving.catalog.indexOf.get(id);
        const serves = ad !== undefined && serving.catalog.active[ad] === 1 && !deps.money.isExhausted(row.campaign_id);
        return { id, campaign_id: row.campaign_id, status: row.status, serving: serves };
      });
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
