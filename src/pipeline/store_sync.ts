// Serving follows the catalog store. Every model that serves (or warms up to serve) is brought to
// the store's state when it opens, then hears every committed change in seq order: a new or
// re-targeted ad is embedded by that model's ad tower and enters its engine's index, a paused or
// archived one leaves at once, a campaign's settings, flight and advertiser take effect. Changes are
// applied one page at a time, in order, to every model; each applies the row as it is now, so a
// change heard twice, or a row newer than its change, does no harm.
import { adContentChanged, campaignContentChanged, effectiveTargeting, sameAdContent } from '../catalog/ad_content';
import { appendAds, type Catalog, dropAppendedAds, retireAd, setAdStatus, setCampaignHeld } from '../catalog/catalog';
import type { CatalogAd, CatalogCampaign, CatalogJson } from '../catalog/catalog_json';
import { grownTo } from '../catalog/growing_columns';
import type { AdTargeting } from '../engine/addon';
import { adPrior } from '../engine/engine';
import { applyCampaign, type Serving } from '../engine/serving';
import type { Logger } from '../log';
import { localDay } from '../money/local_day';
import type { Money } from '../money/money';
import type { StoreEntity } from '../store/errors';
import type { ChangeFollower } from '../store/follow';
import type { CatalogStore } from '../store/store';
import type { AdRow, AdvertiserRow, CampaignRow, Change, Page } from '../store/types';

/** Ads embedded per addAds call: one ad-tower pass and one published snapshot each. */
const embedBatch = 1000;
/** The engine's bound on an ad's targeting rules (TargetingIndex::kMaxRulesPerAd). */
const maxRulesPerAd = 20;

interface Rows {
  advertisers: AdvertiserRow[];
  campaigns: CampaignRow[];
  ads: AdRow[];
  /** Ads whose content changed since the model last saw them (created, or any field but status and keywords). */
  newContent: Set<string>;
  /** Campaigns whose bid type or targeting changed: each of their ads is new content. */
  rekeyed: Set<string>;
}

type Ids = Record<StoreEntity, Set<string>> & { newContent: Set<string>; rekeyed: Set<string> };

const noIds = (): Ids => ({ advertiser: new Set(), campaign: new Set(), ad: new Set(), newContent: new Set(), rekeyed: new Set() });

/** Adds the changes to `ids`: what to read, and what each change says about content. */
function collect(ids: Ids, changes: readonly Change[]): void {
  for (const change of changes) {
    ids[change.entity].add(change.id);
    if (change.entity === 'ad' && (change.op === 'create' || adContentChanged(change.fields))) ids.newContent.add(change.id);
    if (change.entity === 'campaign' && change.op === 'update' && campaignContentChanged(change.fields)) ids.rekeyed.add(change.id);
  }
}

function catalogCampaign(row: CampaignRow): CatalogCampaign {
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

function catalogAd(row: AdRow, targeting: CatalogAd['targeting']): CatalogAd {
  return {
    id: row.id,
    campaign_id: row.campaign_id,
    advertiser_id: row.advertiser_id,
    product_id: row.product_id,
    category: row.category,
    format: row.format,
    title: row.title,
    keywords: row.keywords,
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

/** Whether `nowMs` falls in the campaign's flight [start, end), both wall-clock times in its zone. */
function inFlight(row: CampaignRow, nowMs: number): boolean {
  if (row.flight_start === null && row.flight_end === null) return true;
  const { day, msIntoDay } = localDay(nowMs, row.time_zone);
  const wallClock = new Date(day * 86_400_000 + msIntoDay).toISOString().slice(0, 19);
  return (row.flight_start === null || wallClock >= row.flight_start) && (row.flight_end === null || wallClock < row.flight_end);
}

/** Every row of a list, read a page of 1,000 at a time by its cursor. */
async function everyPage<Row>(list: (page: { limit: number; cursor?: string }) => Promise<Page<Row>>): Promise<Row[]> {
  const rows: Row[] = [];
  let cursor: string | undefined;
  do {
    const page = await list({ limit: 1000, ...(cursor ? { cursor } : {}) });
    rows.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
  return rows;
}

export interface StoreSyncOptions {
  store: CatalogStore;
  money: Money;
  log: Logger;
  /** Milliseconds between checks of flight bounds (a flight starts and ends within this). */
  flightCheckMs?: number;
  now?: () => number;
}

export class StoreSync {
  /** Every model that follows the store: the serving ones and any warming up to serve. */
  private readonly targets = new Set<Serving>();
  /** Work on the targets, one piece at a time: opening a model and applying a page never interleave. */
  private queue: Promise<void> = Promise.resolve();
  private follower: ChangeFollower | undefined;
  private appliedSeq = 0;
  private seqWaiters: Array<{ seq: number; resolve: () => void }> = [];
  /** The latest row seen of each advertiser and campaign the store changed since its seed; absent: as seeded. */
  private readonly advertisers = new Map<string, AdvertiserRow>();
  private readonly campaigns = new Map<string, CampaignRow>();
  private readonly flightTimer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly options: StoreSyncOptions) {
    this.now = options.now ?? Date.now;
    this.flightTimer = setInterval(() => void this.enqueue(() => this.checkFlights()), options.flightCheckMs ?? 1000);
    this.flightTimer.unref();
  }

  /**
   * Brings a newly opened model to the store's state and keeps it there until release(); resolves
   * once it is, before the model takes traffic. The first call starts following the store.
   */
  adopt(serving: Serving, modelCatalog: CatalogJson): Promise<void> {
    return this.enqueue(async () => {
      const { store } = this.options;
      const seq = await store.currentSeq();
      if (await store.seedPending()) {
        // The model's catalog never made it into the store (refused, or no seed yet): the store is
        // not the whole catalog, so the model serves its own and takes only the changes from now on.
        this.options.log.warn("catalog store not seeded: serving the model directory's catalog and following only new changes", { seq });
      } else {
        const source = await store.seedSource();
        const rows = source?.catalogSha256 === serving.catalogSha256 ? await this.changedSince(source.seq, seq) : await this.everyRow(serving, modelCatalog);
        await this.applyRows([serving], rows);
      }
      this.targets.add(serving);
      if (!this.follower) {
        this.appliedSeq = seq;
        this.follower = store.follow({
          fromSeq: seq,
          onChanges: (changes) => this.enqueue(() => this.applyChanges(changes)),
          onError: (error) => this.options.log.warn('catalog store follow', { error: error.message }),
        });
      }
    });
  }

  /** Stops applying changes to a model that no longer serves. */
  release(serving: Serving): void {
    this.targets.delete(serving);
  }

  /** Resolves once every change committed before the call is in force (or after `timeoutMs` regardless). */
  async caughtUp(timeoutMs = 2000): Promise<void> {
    const seq = await this.options.store.currentSeq();
    if (seq <= this.appliedSeq || !this.follower) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.seqWaiters.push({
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  async close(): Promise<void> {
    clearInterval(this.flightTimer);
    await this.follower?.close();
    await this.queue;
  }

  private enqueue(work: () => Promise<void> | void): Promise<void> {
    const next = this.queue.then(work);
    // One failed piece must not stop the ones after it; its caller still hears of the failure.
    this.queue = next.catch((error: Error) => this.options.log.error('catalog store sync', { error: error.message, stack: error.stack }));
    return next;
  }

  private async applyChanges(changes: Change[]): Promise<void> {
    const ids = noIds();
    collect(ids, changes);
    await this.applyRows([...this.targets], await this.read(ids));
    this.appliedSeq = changes[changes.length - 1]!.seq;
    const ready = this.seqWaiters.filter((waiter) => waiter.seq <= this.appliedSeq);
    this.seqWaiters = this.seqWaiters.filter((waiter) => waiter.seq > this.appliedSeq);
    for (const waiter of ready) waiter.resolve();
  }

  /** The current rows of everything changed in (afterSeq, upToSeq]. */
  private async changedSince(afterSeq: number, upToSeq: number): Promise<Rows> {
    const ids = noIds();
    for (let seq = afterSeq; seq < upToSeq;) {
      const changes = await this.options.store.changesSince(seq, 10_000);
      if (changes.length === 0) break;
      collect(
        ids,
        changes.filter((change) => change.seq <= upToSeq),
      );
      seq = changes[changes.length - 1]!.seq;
    }
    return this.read(ids);
  }

  private async read(ids: Ids): Promise<Rows> {
    const { store } = this.options;
    const rows = async <E extends StoreEntity>(entity: E) =>
      (await Promise.all([...ids[entity]].map((id) => store.get(entity, id)))).filter((row) => row !== undefined);
    return {
      advertisers: await rows('advertiser'),
      campaigns: await rows('campaign'),
      ads: await rows('ad'),
      newContent: ids.newContent,
      rekeyed: ids.rekeyed,
    };
  }

  /**
   * Every row of the store, for a model trained on another catalog than the store's seed: its ads
   * the store lacks are retired, and the store's ads it lacks are embedded.
   */
  private async everyRow(serving: Serving, modelCatalog: CatalogJson): Promise<Rows> {
    const { store } = this.options;
    const { catalog } = serving;
    const ads = await everyPage((page) => store.listAds(page));
    const campaigns = await everyPage((page) => store.listCampaigns(page));
    const rows: Rows = {
      advertisers: await everyPage((page) => store.listAdvertisers(page)),
      campaigns,
      ads,
      // The model's own catalog.json says what its ads were embedded and targeted with.
      newContent: new Set(
        ads
          .filter((row) => {
            const index = catalog.indexOf.get(row.id);
            return index === undefined || index >= modelCatalog.ads.length || !sameAdContent(row, modelCatalog.ads[index]!);
          })
          .map((row) => row.id),
      ),
      rekeyed: new Set(campaigns.filter((row) => row.targeting?.length || catalog.campaigns.get(row.id)?.bid_type !== row.bid_type).map((row) => row.id)),
    };
    const stored = new Set(ads.map((ad) => ad.id));
    for (let ad = 0; ad < catalog.size; ad++) if (!stored.has(catalog.adId.at(ad)!) && catalog.adRetired[ad] === 0) this.retire(serving, ad);
    return rows;
  }

  private async applyRows(servings: Serving[], rows: Rows): Promise<void> {
    const nowMs = this.now();
    for (const row of rows.advertisers) this.advertisers.set(row.id, row);
    for (const row of rows.campaigns) this.campaigns.set(row.id, row);
    const touched = new Set([...rows.campaigns.map((row) => row.id), ...this.campaignsOf(rows.advertisers, servings)]);
    for (const serving of servings) {
      for (const row of rows.campaigns) applyCampaign(serving, catalogCampaign(row));
      for (const campaignId of touched) this.hold(serving.catalog, campaignId, nowMs);
    }
    for (const campaignId of touched) this.options.money.campaignChanged(campaignId, nowMs);
    // A campaign whose bid type or targeting changed serves every one of its ads differently.
    const ads = [...rows.ads];
    const newContent = new Set(rows.newContent);
    for (const campaignId of rows.rekeyed) {
      for (const ad of await this.adsOf(campaignId)) {
        newContent.add(ad.id);
        if (!rows.newContent.has(ad.id)) ads.push(ad);
      }
    }
    for (const serving of servings) await this.applyAds(serving, ads, newContent);
    for (const ad of rows.ads) this.options.money.adChanged(ad.id);
  }

  private campaignsOf(advertisers: AdvertiserRow[], servings: Serving[]): string[] {
    const ids = new Set(advertisers.map((row) => row.id));
    const campaigns: string[] = [];
    for (const serving of servings) for (const [id, campaign] of serving.catalog.campaigns) if (ids.has(campaign.advertiser_id)) campaigns.push(id);
    return [...new Set(campaigns)];
  }

  private adsOf(campaignId: string): Promise<AdRow[]> {
    return everyPage((page) => this.options.store.listAds({ campaignId, ...page }));
  }

  private hold(catalog: Catalog, campaignId: string, nowMs: number): void {
    const campaign = catalog.campaigns.get(campaignId);
    if (!campaign) return;
    const advertiser = this.advertisers.get(campaign.advertiser_id);
    const row = this.campaigns.get(campaignId);
    const held = (advertiser !== undefined && advertiser.status !== 'active') || (row !== undefined && !inFlight(row, nowMs));
    if (held !== catalog.campaignHeld.has(campaignId)) setCampaignHeld(catalog, campaignId, held);
  }

  private checkFlights(): void {
    const nowMs = this.now();
    for (const row of this.campaigns.values()) {
      if (row.flight_start === null && row.flight_end === null) continue;
      let changed = false;
      for (const serving of this.targets) {
        const before = serving.catalog.campaignHeld.has(row.id);
        this.hold(serving.catalog, row.id, nowMs);
        changed ||= before !== serving.catalog.campaignHeld.has(row.id);
      }
      if (changed) this.options.money.campaignChanged(row.id, nowMs);
    }
  }

  private retire(serving: Serving, ad: number): void {
    retireAd(serving.catalog, ad);
    serving.engine.setEligibility(Uint32Array.of(ad), Uint8Array.of(0));
  }

  /** Puts each ad row into one model: a status change in place, new content embedded under a new index (the old one retired). */
  private async applyAds(serving: Serving, rows: AdRow[], newContent: ReadonlySet<string>): Promise<void> {
    const { catalog } = serving;
    const embed: Array<{ row: AdRow; targeting: CatalogAd['targeting'] }> = [];
    for (const row of rows) {
      const index = catalog.indexOf.get(row.id);
      const campaign = this.campaigns.get(row.campaign_id);
      if (!catalog.campaigns.has(row.campaign_id)) continue;
      const current = index !== undefined && catalog.adRetired[index] === 0 ? index : undefined;
      if (row.status === 'archived') {
        if (current !== undefined) this.retire(serving, current);
      } else if (current !== undefined && !newContent.has(row.id)) {
        setAdStatus(catalog, current, row.status);
      } else if (row.status === 'paused') {
        // Embedded when it is resumed: until then nothing may serve it, not even for a moment.
        if (current !== undefined) this.retire(serving, current);
      } else {
        const targeting = effectiveTargeting(row.targeting, campaign?.targeting);
        if (targeting.length > maxRulesPerAd) {
          this.options.log.warn('ad not served: too many targeting rules with its campaign', { ad: row.id, rules: targeting.length, max: maxRulesPerAd });
          if (current !== undefined) this.retire(serving, current);
          continue;
        }
        embed.push({ row, targeting });
      }
    }
    for (let start = 0; start < embed.length; start += embedBatch) {
      const batch = embed.slice(start, start + embedBatch);
      try {
        await this.embed(serving, batch);
      } catch {
        // One ad the engine refuses (a targeting value it does not know) must not hold back the
        // rest, nor every later change: embed them one by one and leave the refused ones out.
        for (const one of batch) {
          try {
            await this.embed(serving, [one]);
          } catch (error) {
            this.options.log.warn('ad not served: the engine refused it', { ad: one.row.id, error: (error as Error).message });
            const current = catalog.indexOf.get(one.row.id);
            if (current !== undefined && catalog.adRetired[current] === 0) this.retire(serving, current);
          }
        }
      }
    }
  }

  /**
   * Appends the ads to the model's catalog, then to its engine (the ad tower embeds them and they
   * enter its index), then retires the rows they replace. The catalog goes first: from the moment the
   * engine publishes an ad, a decision may name its index.
   */
  private async embed(serving: Serving, batch: Array<{ row: AdRow; targeting: CatalogAd['targeting'] }>): Promise<void> {
    const { catalog, history, engine } = serving;
    const replaced = batch.map(({ row }) => catalog.indexOf.get(row.id));
    const first = appendAds(
      catalog,
      batch.map(({ row, targeting }) => catalogAd(row, targeting)),
    );
    const size = catalog.size;
    history.ctr = grownTo(history.ctr, size).fill(serving.globalRates.ctr, first);
    history.cvr = grownTo(history.cvr, size).fill(serving.globalRates.cvr, first);
    const indices = Array.from({ length: batch.length }, (_, offset) => first + offset);
    const targeting: AdTargeting[] = batch.flatMap(({ targeting: rules }, offset) => (rules?.length ? [{ ad: offset, rules }] : []));
    let added: number;
    try {
      added = await engine.addAds({
        ...serving.encodeAds(
          batch.map(({ row }) => ({
            advertiserId: row.advertiser_id,
            category: row.category,
            format: row.format,
            bidType: catalog.campaigns.get(row.campaign_id)!.bid_type,
            title: row.title,
            priceMicros: row.price_micros,
            landingQuality: row.landing_quality,
            rating: row.rating,
          })),
        ),
        prior: Float32Array.from(indices, (ad) => adPrior(ad, history, catalog, serving.light)),
        keys: {
          campaign: Uint32Array.from(indices, (ad) => serving.campaignCode.get(catalog.campaignId[ad]!)!),
          advertiser: indices.map((ad) => catalog.advertiserId[ad]!),
          category: indices.map((ad) => catalog.category[ad]!),
          product: indices.map((ad) => catalog.productId.at(ad)!),
        },
        targeting,
      });
    } catch (error) {
      dropAppendedAds(catalog, first, new Map(batch.map(({ row }, offset) => [row.id, replaced[offset]])));
      history.ctr = grownTo(history.ctr, first);
      history.cvr = grownTo(history.cvr, first);
      throw error;
    }
    if (added !== first) throw new Error(`engine and catalog disagree on ad indices (engine ${added}, catalog ${first}); restart to realign`);
    for (const index of replaced) if (index !== undefined && catalog.adRetired[index] === 0) this.retire(serving, index);
    this.options.log.info('ads embedded', { model: serving.modelVersion, ads: batch.length, first });
  }
}
