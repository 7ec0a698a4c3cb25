// Admin catalog routes over the catalog store: create, read, list, edit and archive advertisers,
// campaigns and ads, and export the whole catalog as JSON lines. Serving follows the store
// (src/pipeline/store_sync.ts); a write is answered once this replica serves by it.
import { RequestError } from '../errors';
import type { StoreEntity } from '../store/errors';
import type { ListOptions } from '../store/store';
import type { RowMeta } from '../store/types';
import { type AdminCall, type AdminRoute, readJson } from './admin_route';
import type { Status } from './exchange';
import { toRefusal } from './refusal';

/** The query parameters each list takes besides cursor, limit and status, and the store option each fills. */
const listFilters: Record<StoreEntity, Record<string, 'advertiserId' | 'campaignId'>> = {
  advertiser: {},
  campaign: { advertiser_id: 'advertiserId' },
  ad: { advertiser_id: 'advertiserId', campaign_id: 'campaignId' },
};

/** Entities in the order an import needs them (each hangs under the one before). */
export const entityKinds: readonly StoreEntity[] = ['advertiser', 'campaign', 'ad'];

const etag = (row: RowMeta): string => `"${row.version}"`;

/**
 * Answers `work`'s row with its ETag once this replica serves by it (StoreSync.caughtUp), or the
 * store's refusal through the one mapping.
 */
function answerRow(call: AdminCall, undone: string, work: () => Promise<{ status: Status; row: RowMeta }>): void {
  const { exchange, deps } = call;
  work()
    .then(async (written) => {
      await deps.sync.caughtUp();
      return written;
    })
    .then(
      ({ status, row }) => exchange.send(status, 'application/json', JSON.stringify(row), { ETag: etag(row) }),
      (error: unknown) => exchange.fail(toRefusal(error, undone, deps.log)),
    );
}

/**
 * The version an If-Match header names; undefined without one (or with `*`), so the edit applies
 * over whatever version is current.
 */
function ifMatchVersion(header: string): number | undefined {
  if (header === '' || header.trim() === '*') return undefined;
  const match = /^\s*"(\d{1,15})"\s*$/.exec(header);
  if (!match) throw new RequestError(400, 'bad_request', `If-Match must be an ETag this API returned, such as "3" (got ${JSON.stringify(header)})`);
  return Number(match[1]);
}

function create(entity: StoreEntity) {
  return (call: AdminCall): void => {
    const key = call.req.getHeader('idempotency-key');
    readJson(call, (json) =>
      answerRow(call, `the ${entity} was not created`, async () => {
        const options = { idempotencyKey: key === '' ? undefined : key };
        const result =
          entity === 'advertiser'
            ? await call.deps.store.createAdvertiser(json, options)
            : entity === 'campaign'
              ? await call.deps.store.createCampaign(json, options)
              : await call.deps.store.createAd(json, options);
        if (result.created) call.deps.log.info('catalog row created', { entity, id: result.row.id });
        return { status: result.created ? 201 : 200, row: result.row };
      }),
    );
  };
}

function show(entity: StoreEntity) {
  return (call: AdminCall): void => {
    const id = call.req.getParameter(0)!;
    answerRow(call, `the ${entity} was not read`, async () => {
      const row = await call.deps.store.get(entity, id);
      if (!row) throw new RequestError(404, 'not_found', `no ${entity} ${id}`);
      return { status: 200, row };
    });
  };
}

function list(entity: StoreEntity) {
  return (call: AdminCall): void => {
    const { exchange, deps } = call;
    const query = new URLSearchParams(call.req.getQuery() ?? '');
    const options: ListOptions & { advertiserId?: string; campaignId?: string } = {};
    try {
      for (const [name, value] of query) {
        if (name === 'cursor') options.cursor = value;
        else if (name === 'status') options.status = value as ListOptions['status'];
        else if (name === 'limit') options.limit = /^\d{1,6}$/.test(value) ? Number(value) : Number.NaN;
        else if (Object.hasOwn(listFilters[entity], name)) options[listFilters[entity][name]!] = value;
        else
          throw new RequestError(
            422,
            'invalid_request',
            `unknown query parameter; allowed: ${['status', ...Object.keys(listFilters[entity]), 'cursor', 'limit'].join(', ')}`,
            name,
          );
      }
    } catch (error) {
      return exchange.fail(toRefusal(error, 'the list was not read', deps.log));
    }
    const page =
      entity === 'advertiser' ? deps.store.listAdvertisers(options) : entity === 'campaign' ? deps.store.listCampaigns(options) : deps.store.listAds(options);
    page.then(
      (result) => exchange.send(200, 'application/json', JSON.stringify(result)),
      (error: unknown) => exchange.fail(toRefusal(error, 'the list was not read', deps.log)),
    );
  };
}

function edit(entity: StoreEntity) {
  return (call: AdminCall): void => {
    const id = call.req.getParameter(0)!;
    const ifMatch = call.req.getHeader('if-match');
    readJson(call, (json) =>
      answerRow(call, `the ${entity} was not changed`, async () => {
        const row = await call.deps.store.update(entity, id, json, { ifVersion: ifMatchVersion(ifMatch) });
        call.deps.log.info('catalog row edited', { entity, id, version: row.version });
        return { status: 200, row };
      }),
    );
  };
}

function archive(entity: StoreEntity) {
  return (call: AdminCall): void => {
    const id = call.req.getParameter(0)!;
    const ifMatch = call.req.getHeader('if-match');
    answerRow(call, `the ${entity} was not archived`, async () => {
      const row = await call.deps.store.archive(entity, id, { ifVersion: ifMatchVersion(ifMatch) });
      call.deps.log.info('catalog row archived', { entity, id });
      return { status: 200, row };
    });
  };
}

/** Every row, archived ones included, as `{"kind": ..., ...row}` lines: advertisers, then campaigns, then ads. */
function exportCatalog({ exchange, deps }: AdminCall): void {
  const stream = exchange.stream(200, 'application/x-ndjson');
  void (async () => {
    for (const kind of entityKinds) {
      let cursor: string | undefined;
      do {
        const options = { limit: 1000, cursor };
        const page =
          kind === 'advertiser'
            ? await deps.store.listAdvertisers(options)
            : kind === 'campaign'
              ? await deps.store.listCampaigns(options)
              : await deps.store.listAds(options);
        const lines = page.items.map((row) => `${JSON.stringify({ kind, ...row })}\n`).join('');
        if (lines !== '' && !(await stream.write(lines))) return;
        cursor = page.next_cursor ?? undefined;
      } while (cursor !== undefined);
    }
    stream.end();
  })().catch((error: unknown) => {
    toRefusal(error, 'the export was cut short', deps.log);
    stream.abort();
  });
}

// Under /v1/admin/catalog/ so that the routes over the serving model's catalog
// (/v1/admin/campaigns, /v1/admin/ads) keep their meaning until serving follows the store.
export const catalogRoutes: readonly AdminRoute[] = [
  { method: 'post', pattern: '/v1/admin/catalog/advertisers', handle: create('advertiser') },
  { method: 'get', pattern: '/v1/admin/catalog/advertisers', handle: list('advertiser') },
  { method: 'get', pattern: '/v1/admin/catalog/advertisers/:id', handle: show('advertiser') },
  { method: 'patch', pattern: '/v1/admin/catalog/advertisers/:id', handle: edit('advertiser') },
  { method: 'del', pattern: '/v1/admin/catalog/advertisers/:id', handle: archive('advertiser') },
  { method: 'post', pattern: '/v1/admin/catalog/campaigns', handle: create('campaign') },
  { method: 'get', pattern: '/v1/admin/catalog/campaigns', handle: list('campaign') },
  { method: 'get', pattern: '/v1/admin/catalog/campaigns/:id', handle: show('campaign') },
  { method: 'patch', pattern: '/v1/admin/catalog/campaigns/:id', handle: edit('campaign') },
  { method: 'del', pattern: '/v1/admin/catalog/campaigns/:id', handle: archive('campaign') },
  { method: 'post', pattern: '/v1/admin/catalog/ads', handle: create('ad') },
  { method: 'get', pattern: '/v1/admin/catalog/ads', handle: list('ad') },
  { method: 'get', pattern: '/v1/admin/catalog/ads/:id', handle: show('ad') },
  { method: 'patch', pattern: '/v1/admin/catalog/ads/:id', handle: edit('ad') },
  { method: 'del', pattern: '/v1/admin/catalog/ads/:id', handle: archive('ad') },
  { method: 'get', pattern: '/v1/admin/catalog/export', handle: exportCatalog },
];
