// A model's catalog read from the catalog store: every advertiser and campaign, and every ad in id
// order, a page at a time, joined with the model's rows (model_catalog.ts). What the join cannot
// serve with the model's trained embedding (an ad the model was not trained on, or one whose
// features changed since) is handed to StoreSync to embed before the model takes traffic.
import type { ServedAd } from '../catalog/ad_content';
import { type AdColumns, AdColumnsBuilder, type ServedAdRow, statuses } from '../catalog/ad_columns';
import type { CatalogOptions } from '../catalog/catalog';
import type { CatalogAd, CatalogCampaign } from '../catalog/catalog_json';
import { type NewAdFields, trainedFeaturesMatcher } from '../engine/ad_features';
import { ModelCatalogJoin, type ServingCatalog } from '../engine/model_catalog';
import type { ModelDir } from '../engine/model_dir';
import type { CatalogStore } from '../store/store';
import type { AdvertiserRow, CampaignRow } from '../store/types';
import { readSnapshot, type SnapshotHeader, snapshotVersion, writeSnapshot } from './catalog_snapshot';

/** Ads read per query: one page of the scan. */
const scanPage = 5000;

/** What the store held when a model's catalog was read from it. */
export interface StoreCatalogRead {
  /** The store's seq before the read: changes after it are applied to the model before it serves. */
  seq: number;
  /** The seq the store's seed ended at, when it was seeded from this model's own catalog.jsonl: rows unchanged since then are as the model was trained. */
  seededFromModelAt: number | undefined;
  advertisers: AdvertiserRow[];
  campaigns: CampaignRow[];
  /** The store's live ads the model has no embedding for: not trained on it, or its features changed since (read from another seed). */
  toEmbed: ServedAdRow[];
}

/** A store campaign as the catalog columns take it. */
export function catalogCampaign(row: CampaignRow): CatalogCampaign {
  return {
    id: row.id,
    advertiser_id: row.advertiser_id,
    bid_type: row.bid_type,
    bid_micros: row.bid_micros,
    daily_budget_micros: row.daily_budget_micros,
    pacing: row.pacing,
    // Archived campaigns keep their row (events of ads they served still bill) but never serve.
    status: row.status === 'active' ? 'active' : 'paused',
    ...(row.frequency_cap ? { frequency_cap: row.frequency_cap } : {}),
    ...(row.lifetime_budget_micros !== null ? { lifetime_budget_micros: row.lifetime_budget_micros } : {}),
    ...(row.time_zone !== 'UTC' ? { time_zone: row.time_zone } : {}),
    ...(row.day_parting ? { day_parting: row.day_parting } : {}),
  };
}

/** A store ad, live (active or paused), as the catalog columns take it with the rules it serves under. */
export function catalogAd(row: ServedAdRow, targeting: CatalogAd['targeting']): ServedAd {
  return {
    id: row.id,
    campaign_id: row.campaign_id,
    advertiser_id: row.advertiser_id,
    product_id: row.product_id,
    category: row.category,
    format: row.format,
    title: row.title,
    landing_url: row.landing_url,
    image_url: row.image_url,
    price_micros: row.price_micros,
    landing_quality: row.landing_quality,
    rating: row.rating,
    ...(targeting?.length ? { targeting } : {}),
    status: row.status === 'paused' ? 'paused' : 'active',
    policy_flags: row.policy_flags,
  };
}

/** The fields of a store ad its embedding depends on, under its campaign's bid type. */
export function newAdFields(row: ServedAdRow, bidType: string): NewAdFields {
  return {
    advertiserId: row.advertiser_id,
    category: row.category,
    format: row.format,
    bidType,
    title: row.title,
    priceMicros: row.price_micros,
    landingQuality: row.landing_quality,
    rating: row.rating,
  };
}

async function allRows<Row>(pages: AsyncIterable<Row[]>): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const page of pages) rows.push(...page);
  return rows;
}

/** A snapshot's ads (their indices in its columns) with the current rows of the ads changed since it, in id order. */
function* merged(columns: AdColumns, changed: readonly ServedAdRow[]): Generator<ServedAdRow | number> {
  let next = 0;
  for (let i = 0; i < columns.length; i++) {
    if (next < changed.length) {
      const id = columns.text.id.at(i)!;
      while (next < changed.length && changed[next]!.id < id) yield changed[next++]!;
      if (next < changed.length && changed[next]!.id === id) {
        yield changed[next++]!;
        continue;
      }
    }
    yield i;
  }
  while (next < changed.length) yield changed[next++]!;
}

/** Rows by id: the snapshot's, replaced by the current ones. */
function overlaid<Row extends { id: string }>(rows: readonly Row[], current: readonly Row[]): Row[] {
  const byId = new Map(rows.map((row) => [row.id, row]));
  for (const row of current) byId.set(row.id, row);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** Changes since a snapshot beyond which load() writes a new one. */
const snapshotStaleChanges = 10_000;

interface CatalogRows {
  advertisers: AdvertiserRow[];
  campaigns: CampaignRow[];
  /** The ads in id order: rows, or indices into `columns`. */
  ads: Iterable<ServedAdRow | number> | AsyncIterable<ServedAdRow | number>;
  columns?: AdColumns;
  /** Columns of every ad, for a new snapshot; absent when the one read is fresh enough. */
  snapshot?: AdColumnsBuilder;
}

/** The store's rows at `seq` or later: from the dataDir's snapshot and the changes since it, or (no usable snapshot) read whole. */
async function catalogRows(store: CatalogStore, seq: number, storeId: string, dataDir: string | undefined): Promise<CatalogRows> {
  const snapshot = dataDir === undefined ? undefined : readSnapshot(dataDir);
  const usable = snapshot !== undefined && snapshot.header.storeId === storeId && snapshot.header.seq <= seq && (await sameChangeAt(store, snapshot.header));
  if (!usable) {
    const scanned = async function* (): AsyncGenerator<ServedAdRow> {
      for await (const page of store.scanServedAds(scanPage)) yield* page;
    };
    return {
      advertisers: await allRows(store.scan('advertiser', scanPage)),
      campaigns: await allRows(store.scan('campaign', scanPage)),
      ads: scanned(),
      ...(dataDir !== undefined ? { snapshot: new AdColumnsBuilder() } : {}),
    };
  }
  const ids = { advertiser: new Set<string>(), campaign: new Set<string>(), ad: new Set<string>() };
  let changes = 0;
  for (let after = snapshot.header.seq; after < seq;) {
    const page = await store.changesSince(after, 10_000);
    if (page.length === 0) break;
    for (const change of page) if (change.seq <= seq) ids[change.entity].add(change.id);
    changes += page.length;
    after = page[page.length - 1]!.seq;
  }
  const current = async <E extends 'advertiser' | 'campaign' | 'ad'>(entity: E) =>
    (await Promise.all([...ids[entity]].map((id) => store.get(entity, id)))).filter((row) => row !== undefined);
  const ads = (await current('ad')).sort((a, b) => (a.id < b.id ? -1 : 1));
  return {
    advertisers: overlaid(snapshot.header.advertisers, await current('advertiser')),
    campaigns: overlaid(snapshot.header.campaigns, await current('campaign')),
    ads: merged(snapshot.columns, ads),
    columns: snapshot.columns,
    ...(changes >= snapshotStaleChanges ? { snapshot: new AdColumnsBuilder() } : {}),
  };
}

/** Whether the store's change at the snapshot's seq is the one the snapshot saw (not a restored older copy's that has since reached the seq again). */
async function sameChangeAt(store: CatalogStore, header: SnapshotHeader): Promise<boolean> {
  const [change] = header.seq === 0 ? [] : await store.changesSince(header.seq - 1, 1);
  const seen = change === undefined ? undefined : { entity: change.entity, id: change.id, version: change.version };
  return JSON.stringify(seen) === JSON.stringify(header.change);
}

export interface StoreCatalog {
  serving: ServingCatalog;
  read: StoreCatalogRead;
  /** Writes the replica's new snapshot, when the read made one (after the load, off the start's critical path). */
  writeSnapshot?: () => Promise<void>;
}

/**
 * Reads the store's catalog for `model`; the store must have been seeded. With `dataDir`, a
 * snapshot there saves reading every row (catalog_snapshot.ts).
 */
export async function readStoreCatalog(store: CatalogStore, model: ModelDir, options: CatalogOptions, dataDir?: string): Promise<StoreCatalog> {
  const seq = await store.currentSeq();
  const storeId = await store.storeId();
  const source = await store.seedSource();
  const seededFromModelAt = source !== undefined && source.catalogSha256 === model.seedCatalog?.sha256 ? source.seq : undefined;
  const rows = await catalogRows(store, seq, storeId, dataDir);
  const { advertisers, campaigns } = rows;
  const bidType = new Map(campaigns.map((row) => [row.id, row.bid_type]));
  const join = new ModelCatalogJoin(
    model,
    campaigns.map((row) => ({ ...catalogCampaign(row), targeting: row.targeting })),
    options,
  );
  // A store seeded from another catalog may hold, under a model's ad id, an ad it was not trained as.
  const trainedAs = seededFromModelAt === undefined ? trainedFeaturesMatcher(model) : undefined;
  const toEmbed: ServedAdRow[] = [];
  const { columns } = rows;
  for await (const next of rows.ads) {
    // Ads from the snapshot's columns are copied as bytes; a row object is made only where one is kept.
    const fromColumns = typeof next === 'number';
    const row = (): ServedAdRow => (fromColumns ? columns!.row(next) : next);
    rows.snapshot?.push(row());
    const index = fromColumns ? join.addFrom(columns!, next) : join.add(next);
    if ((fromColumns ? statuses[columns!.status[next]!] : next.status) === 'archived') continue;
    const trained = index !== undefined && (trainedAs === undefined || trainedAs(index, newAdFields(row(), bidType.get(row().campaign_id)!)));
    if (!trained) toEmbed.push(row());
  }
  const serving = join.finish();
  const read = { seq, seededFromModelAt, advertisers, campaigns, toEmbed };
  const { snapshot } = rows;
  if (snapshot === undefined || dataDir === undefined) return { serving, read };
  return {
    serving,
    read,
    writeSnapshot: async () => {
      const [change] = seq === 0 ? [] : await store.changesSince(seq - 1, 1);
      const header: SnapshotHeader = {
        version: snapshotVersion,
        storeId,
        seq,
        change: change && { entity: change.entity, id: change.id, version: change.version },
        advertisers,
        campaigns,
      };
      await writeSnapshot(dataDir, header, snapshot.finish());
    },
  };
}
