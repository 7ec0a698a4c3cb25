// Campaign and ad edits from the admin API. Each edit is validated against the campaign it changes,
// recorded durably in the data directory (catalog-changes.json, written aside then renamed), and
// re-applied to every catalog loaded later (at start and at each model swap), so an edit outlives
// restarts and model updates. Edits are per daemon: with several replicas, send them to each.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { writeDurably } from '../durable_file';
import type { CatalogCampaign } from './catalog_json';
import { RequestError } from '../errors';
import { type Catalog, CatalogError, setAdStatus, setCampaign, validateCampaign } from './catalog';

/** Fields an edit may set; null removes an optional one (no lifetime budget, no cap, UTC). */
const editable = ['status', 'bid_micros', 'daily_budget_micros', 'lifetime_budget_micros', 'pacing', 'day_parting', 'frequency_cap', 'time_zone'] as const;
const removable = new Set(['lifetime_budget_micros', 'day_parting', 'frequency_cap', 'time_zone']);

export type CampaignEdit = Partial<Record<(typeof editable)[number], unknown>>;
export type AdStatus = 'active' | 'paused';

interface Recorded {
  campaigns: Record<string, CampaignEdit>;
  ads: Record<string, AdStatus>;
}

function merged(campaign: Readonly<CatalogCampaign>, edit: CampaignEdit): CatalogCampaign {
  const next: Record<string, unknown> = { ...campaign };
  for (const [key, value] of Object.entries(edit)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return next as unknown as CatalogCampaign;
}

export class CatalogChanges {
  private constructor(
    private readonly dir: string,
    private recorded: Recorded,
  ) {}

  static open(dataDir: string): CatalogChanges {
    mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'catalog-changes.json');
    let recorded: Recorded = { campaigns: {}, ads: {} };
    if (existsSync(file)) {
      try {
        recorded = JSON.parse(readFileSync(file, 'utf8')) as Recorded;
      } catch (error) {
        throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
      }
    }
    return new CatalogChanges(dataDir, recorded);
  }

  /** Applies every recorded edit to a freshly loaded catalog; edits of campaigns or ads it lacks wait for a model that has them. */
  applyTo(catalog: Catalog): void {
    for (const [id, edit] of Object.entries(this.recorded.campaigns)) {
      const campaign = catalog.campaigns.get(id);
      if (campaign) setCampaign(catalog, merged(campaign, edit));
    }
    for (const [id, status] of Object.entries(this.recorded.ads)) {
      const ad = catalog.indexOf.get(id);
      if (ad !== undefined) setAdStatus(catalog, ad, status);
    }
  }

  /** Checks an edit of campaign `id` against `catalog` and records it; returns the campaign as edited. */
  editCampaign(catalog: Catalog, id: string, body: unknown): CatalogCampaign {
    const campaign = catalog.campaigns.get(id);
    if (!campaign) throw new RequestError(404, 'not_found', `no campaign ${id}`);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError(422, 'invalid_request', 'body must be a JSON object');
    const edit = body as CampaignEdit;
    for (const [key, value] of Object.entries(edit)) {
      if (!(editable as readonly string[]).includes(key))
        throw new RequestError(422, 'invalid_request', `"${key}" cannot be edited; editable: ${editable.join(', ')}`);
      if (value === null && !removable.has(key)) throw new RequestError(422, 'invalid_request', `"${key}" cannot be removed`);
    }
    const next = merged(campaign, edit);
    try {
      validateCampaign(next, catalog.limits);
    } catch (error) {
      if (error instanceof CatalogError) throw new RequestError(422, 'invalid_request', error.message);
      throw error;
    }
    this.save({ ...this.recorded, campaigns: { ...this.recorded.campaigns, [id]: { ...this.recorded.campaigns[id], ...edit } } });
    return next;
  }

  /** Checks an ad status edit and records it; returns the ad's index in `catalog`. */
  editAd(catalog: Catalog, id: string, body: unknown): { ad: number; status: AdStatus } {
    const ad = catalog.indexOf.get(id);
    if (ad === undefined) throw new RequestError(404, 'not_found', `no ad ${id}`);
    const fields = body as { status?: unknown } | null;
    if (
      typeof fields !== 'object' ||
      fields === null ||
      Object.keys(fields).some((key) => key !== 'status') ||
      (fields.status !== 'active' && fields.status !== 'paused')
    ) {
      throw new RequestError(422, 'invalid_request', 'body must be {"status": "active" | "paused"}');
    }
    this.save({ ...this.recorded, ads: { ...this.recorded.ads, [id]: fields.status } });
    return { ad, status: fields.status };
  }

  /** Takes `next` as the record once it is on disk; a failed write leaves the old record in force. */
  private save(next: Recorded): void {
    writeDurably(this.dir, 'catalog-changes.json', JSON.stringify(next));
    this.recorded = next;
  }
}
