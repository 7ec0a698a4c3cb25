// Serving follows the catalog store. Every model that serves (or warms up to serve) is brought to
// the store's state when it opens, then hears every committed change in seq order: a new or
// re-targeted ad is embedded by that model's ad tower and enters its engine's index, a paused or
// archived one leaves at once, a campaign's settings, flight and advertiser take effect. Changes are
// applied one page at a time, in order, to every model; each applies the row as it is now, so a
// change heard twice, or a row newer than its change, does no harm.
import { adContentChanged, campaignContentChanged, effectiveTargeting } from '../catalog/ad_content';
import type { ServedAdRow } from '../catalog/ad_columns';
import { appendAds, type Catalog, type CatalogOptions, dropAppendedAds, retireAd, setAdStatus, setCampaignHeld } from '../catalog/catalog';
import type { CatalogAd } from '../catalog/catalog_json';
import { grownTo } from '../catalog/growing_columns';
import type { AdTargeting } from '../engine/addon';
import { adPrior } from '../engine/engine';
import { catalogFromFile, maxRulesPerAd, type ServingCatalog } from '../engine/model_catalog';
import type { ModelDir } from '../engine/model_dir';
import { applyCampaign, type Serving } from '../engine/serving';
import type { Logger } from '../log';
import { localDay } from '../money/local_day';
import type { Money } from '../money/money';
import type { StoreEntity } from '../store/errors';
import type { ChangeFollower } from '../store/follow';
import type { CatalogStore } from '../store/store';
import type { AdRow, AdvertiserRow, CampaignRow, Change, Page } from '../store/types';
import { catalogAd, catalogCampaign, newAdFields, readStoreCatalog, type StoreCatalogRead } from './store_catalog';

/** Ads embedded per addAds call: one ad-tower pass and one published snapshot each. */
const embedBatch = 1000;

interface Rows {
  advertisers: AdvertiserRow[];
  campaigns: CampaignRow[];
  ads: ServedAdRow[];
  /** Ads whose content changed since the model last saw them (created, or any field but status and keywords). */
  newContent: Set<string>;
  /** Campaigns whose bid type or targeting changed: each of their ads is new content. */
  rekeyed: Set<string>;
}

type Ids = Record<StoreEntity, Set<string>> & { newContent: Set<string>; rekeyed: Set<string> };

const noIds = (): Ids => ({ advertiser: new Set(), campaign: new Set(), ad: new Set(), newContent: new Set(), rekeyed: new Set() });

const isNewAdContent = (change: Change): boolean => change.entity === 'ad' && (change.op === 'create' || adContentChanged(change.fields));
const isRekey = (change: Change): boolean => change.entity === 'campaign' && change.op === 'update' && campaignContentChanged(change.fields);
/** Whether a change leaves an ad, or every ad of a campaign, to be embedded again. */
const isNewContent = (change: Change): boolean => isNewAdContent(change) || isRekey(change);

/** Adds the changes to `ids`: what to read, and what each change says about content. */
function collect(ids: Ids, changes: readonly Change[]): void {
  for (const change of changes) {
    ids[change.entity].add(change.id);
    if (isNewAdContent(change)) ids.newContent.add(change.id);
    if (isRekey(change)) ids.rekeyed.add(change.id);
  }
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
  /** Where this replica keeps its catalog snapshot (catalog_snapshot.ts); absent: every load reads the store whole. */
  dataDir?: string;
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
  /** What load() read for each catalog it built, until adopt() takes it. */
  private readonly reads = new WeakMap<Catalog, StoreCatalogRead & { writeSnapshot?: () => Promise<void> }>();
  /** Snapshot writes in flight, one after another; close() waits for them. */
  private snapshotWrites: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly options: StoreSyncOptions) {
    this.now = options.now ?? Date.now;
    this.flightTimer = setInterval(() => void this.enqueue(() => this.checkFlights()), options.flightCheckMs ?? 1000);
    this.flightTimer.unref();
  }

  /**
   * The catalog a model opens with (openServing's `catalog`): the store's, joined with the model's
   * rows; what the model has no embedding for is embedded at adopt(). A store not yet seeded is not
   * the whole catalog, so the model then opens with its own catalog.jsonl.
   */
  async load(model: ModelDir, options: CatalogOptions): Promise<ServingCatalog> {
    const { store, log } = this.options;
    if (await store.seedPending()) return catalogFromFile(model, options);
    const started = Date.now();
    const { serving, read, writeSnapshot } = await readStoreCatalog(store, model, options, this.options.dataDir);
    this.reads.set(serving.catalog, { ...read, ...(writeSnapshot ? { writeSnapshot } : {}) });
    for (const ad of serving.tooManyRules) log.warn('ad not served: too many targeting rules with its campaign', { ad, max: maxRulesPerAd });
    log.info('catalog read from the store', { ads: serving.catalog.size, toEmbed: read.toEmbed.length, seq: read.seq, seconds: (Date.now() - started) / 1000 });
    return serving;
  }

  /**
   * Brings a model opened with load()'s catalog to the store's state and keeps it there until
   * release(): embeds what it has no embedding for, applies what changed since the read; resolves
   * once done, before the model takes traffic. The first call starts following the store.
   */
  async adopt(serving: Serving): Promise<void> {
    const read = this.reads.get(serving.catalog);
    this.reads.delete(serving.catalog);
    await this.enqueue(async () => {
      const { store } = this.options;
      const seq = await store.currentSeq();
      if (!read) {
        this.options.log.warn("catalog store not seeded: serving the model directory's catalog and following only new changes", { seq });
      } else {
        const ids = noIds();
        // Rows unchanged since the seed are as the model was trained; the read took the rest as they are now, but not their embeddings.
        if (read.seededFromModelAt !== undefined) await this.collectChanges(ids, read.seededFromModelAt, read.seq, isNewContent);
        await this.collectChanges(ids, read.seq, seq);
        const changed = await this.read(ids);
        // The catalog was built with every campaign's settings; what it cannot know is which are held.
        const nowMs = this.now();
        for (const row of read.advertisers) if (!this.advertisers.has(row.id)) this.advertisers.set(row.id, row);
        for (const row of read.campaigns) if (!this.campaigns.has(row.id)) this.campaigns.set(row.id, row);
        for (const row of read.campaigns) if (this.hold(serving.catalog, row.id, nowMs)) this.options.money.campaignChanged(row.id, nowMs);
        await this.applyRows([serving], {
          advertisers: changed.advertisers,
          campaigns: changed.campaigns,
          ads: [...read.toEmbed.filter((row) => !ids.ad.has(row.id)), ...changed.ads],
          newContent: new Set([...read.toEmbed.map((row) => row.id), ...changed.newContent]),
          rekeyed: changed.rekeyed,
        });
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
    // Written while the model warms up and serves: it only saves the next start a whole read.
    if (read?.writeSnapshot) this.snapshotWrites = this.snapshotWrites.then(() => this.persist(read.writeSnapshot!, serving.catalog.size, read.seq));
  }

  private async persist(write: () => Promise<void>, ads: number, seq: number): Promise<void> {
    const started = Date.now();
    try {
      await write();
      this.options.log.info('catalog snapshot written', { ads, seq, seconds: (Date.now() - started) / 1000 });
    } catch (error) {
      this.options.log.warn('catalog snapshot not written', { error: (error as Error).message });
    }
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
    await this.snapshotWrites;
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

  /** Adds the changes in (afterSeq, upToSeq] that `keep` takes to `ids`. */
  private async collectChanges(ids: Ids, afterSeq: number, upToSeq: number, keep: (change: Change) => boolean = () => true): Promise<void> {
    for (let seq = afterSeq; seq < upToSeq;) {
      const changes = await this.options.store.changesSince(seq, 10_000);
      if (changes.length === 0) break;
      collect(
        ids,
        changes.filter((change) => change.seq <= upToSeq && keep(change)),
      );
      seq = changes[changes.length - 1]!.seq;
    }
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

  /** Holds the campaign out of serving, or lets it serve, as its flight and advertiser say; returns whether that changed. */
  private hold(catalog: Catalog, campaignId: string, nowMs: number): boolean {
    const campaign = catalog.campaigns.get(campaignId);
    if (!campaign) return false;
    const advertiser = this.advertisers.get(campaign.advertiser_id);
    const row = this.campaigns.get(campaignId);
    const held = (advertiser !== undefined && advertiser.status !== 'active') || (row !== undefined && !inFlight(row, nowMs));
    if (held === catalog.campaignHeld.has(campaignId)) return false;
    setCampaignHeld(catalog, campaignId, held);
    return true;
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
  private async applyAds(serving: Serving, rows: readonly ServedAdRow[], newContent: ReadonlySet<string>): Promise<void> {
    const { catalog } = serving;
    const embed: Array<{ row: ServedAdRow; targeting: CatalogAd['targeting'] }> = [];
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
  private async embed(serving: Serving, batch: Array<{ row: ServedAdRow; targeting: CatalogAd['targeting'] }>): Promise<void> {
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
        ...serving.encodeAds(batch.map(({ row }) => newAdFields(row, catalog.campaigns.get(row.campaign_id)!.bid_type))),
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
