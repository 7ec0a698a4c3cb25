// The ad catalog as columns indexed by the dense ad index shared with the engine. Campaign settings
// (status, bid, budgets, pacing and day-parting, frequency cap, time zone) and ad status can change while serving
// (the admin API): every such change goes through setCampaign / setAdStatus, the same path the
// catalog file takes at load, and the columns and maps below follow. Ads created while serving are
// appended (appendAds) under the indices the engine gave them; an ad whose content changed is
// appended again and its old row retired, so an index never changes meaning.
import { defaults } from '../config';
import type { ServedAd } from './ad_content';
import { type AdColumns, statuses } from './ad_columns';
import type { CatalogCampaign, CatalogJson, PacingMode } from './catalog_json';
import { isKnownTimeZone } from './time_zone';
import { BidType } from '../protocol/schema';
import { GrowingIndex, GrowingStrings, grownTo } from './growing_columns';
import { PackedIndex, PackedStringsBuilder, type StringColumn } from './packed_strings';

export type Micros = number;

/**
 * Upper bounds on the money a campaign may name, so that every amount and every sum stays an exact
 * integer: spend is summed in nanos, which must stay under 2^53.
 */
export interface MoneyLimits {
  maxBidMicros: Micros;
  maxBudgetMicros: Micros;
}

export interface Catalog {
  readonly size: number;
  // Per-ad text: values shared by many ads are interned strings, values unique to an ad are packed
  // outside the JavaScript heap (see packed_strings.ts).
  readonly adId: StringColumn;
  readonly campaignId: readonly string[];
  readonly advertiserId: readonly string[];
  readonly productId: StringColumn;
  readonly category: readonly string[];
  readonly title: StringColumn;
  readonly landingUrl: StringColumn;
  readonly imageUrl: StringColumn;
  /** BidType enum value of the ad's campaign. */
  readonly bidType: Uint8Array;
  /** The campaign's bid per billable event: click (CPC), thousand impressions (CPM), conversion (CPA). */
  readonly bidMicros: Float64Array;
  /** Landing-page quality in (0, 1]. */
  readonly landingQuality: Float32Array;
  /** Dense ad index of each ad id. */
  readonly indexOf: { get(adId: string): number | undefined };
  /** The campaigns' current settings. */
  readonly campaigns: ReadonlyMap<string, Readonly<CatalogCampaign>>;
  /** Ad indices of each campaign. */
  readonly campaignAds: ReadonlyMap<string, Uint32Array>;
  readonly campaignDailyBudgetMicros: ReadonlyMap<string, number>;
  readonly campaignLifetimeBudgetMicros: ReadonlyMap<string, number>;
  /** Ads paused on their own (1), whatever their campaign's status. */
  readonly adPaused: Uint8Array;
  /** Ads carrying a policy flag the daemon blocks (1): they never serve. */
  readonly adPolicyBlocked: Uint8Array;
  /** Rows replaced by a newer row of the same ad, or archived (1): they never serve again, but events of ads they served still find their campaign. */
  readonly adRetired: Uint8Array;
  /** Ads that may serve: active ads of active campaigns (1) or not (0). */
  readonly active: Uint8Array;
  /** Active campaigns held out of serving all the same: outside their flight, or under a paused or archived advertiser. */
  readonly campaignHeld: ReadonlySet<string>;
  /** Ads with any of these among their policy_flags never serve. */
  readonly blockedPolicyFlags: ReadonlySet<string>;
  readonly campaignPacing: ReadonlyMap<string, PacingMode>;
  readonly campaignFrequencyCap: ReadonlyMap<string, { impressions: number; windowSeconds: number }>;
  /** IANA time zone of each campaign that has one other than UTC. */
  readonly campaignTimeZone: ReadonlyMap<string, string>;
  /** Bounds every campaign edit is checked against. */
  readonly limits: MoneyLimits;
  /** Hourly pacing weights of each day-parted campaign. */
  readonly campaignDayParting: ReadonlyMap<string, readonly number[]>;
}

type Mutable<T> = {
  -readonly [K in keyof T]: T[K] extends ReadonlyMap<infer K2, infer V> ? Map<K2, V> : T[K] extends ReadonlySet<infer V> ? Set<V> : T[K];
};

export class CatalogError extends Error {}

const bidTypes: Record<string, BidType> = { CPC: BidType.Cpc, CPM: BidType.Cpm, CPA: BidType.Cpa };

const isCount = (value: unknown, max: number): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;

/** Checks one campaign's settings; throws a CatalogError that names the campaign and the field. */
export function validateCampaign(campaign: CatalogCampaign, limits: MoneyLimits): void {
  const fail = (message: string): never => {
    throw new CatalogError(`campaign ${campaign.id}: ${message}`);
  };
  if (bidTypes[campaign.bid_type] === undefined) fail(`bid_type must be CPC, CPM or CPA (got ${JSON.stringify(campaign.bid_type)})`);
  if (!isCount(campaign.bid_micros, limits.maxBidMicros) || campaign.bid_micros === 0)
    fail(`bid_micros must be an integer in 1..${limits.maxBidMicros} (maxBidMicros)`);
  if (!isCount(campaign.daily_budget_micros, limits.maxBudgetMicros))
    fail(`daily_budget_micros must be an integer in 0..${limits.maxBudgetMicros} (maxBudgetMicros; 0: no daily budget)`);
  if (campaign.lifetime_budget_micros !== undefined && !isCount(campaign.lifetime_budget_micros, limits.maxBudgetMicros)) {
    fail(`lifetime_budget_micros must be an integer in 0..${limits.maxBudgetMicros} (maxBudgetMicros)`);
  }
  if (campaign.pacing !== 'even' && campaign.pacing !== 'asap') fail(`pacing must be even or asap (got ${JSON.stringify(campaign.pacing)})`);
  if (campaign.status !== 'active' && campaign.status !== 'paused') fail(`status must be active or paused (got ${JSON.stringify(campaign.status)})`);
  const cap = campaign.frequency_cap;
  if (
    cap !== undefined &&
    (typeof cap !== 'object' ||
      cap === null ||
      !isCount(cap.impressions, 1e6) ||
      cap.impressions === 0 ||
      !isCount(cap.window_seconds, 90 * 86_400) ||
      cap.window_seconds === 0)
  ) {
    fail('frequency_cap must be {impressions: 1.., window_seconds: 1..7776000}');
  }
  const hours = campaign.day_parting;
  if (
    hours !== undefined &&
    (!Array.isArray(hours) || hours.length !== 24 || hours.some((w) => typeof w !== 'number' || !(w >= 0) || !Number.isFinite(w)) || !hours.some((w) => w > 0))
  ) {
    fail('day_parting must be 24 non-negative hourly weights, not all 0');
  }
  if (campaign.time_zone !== undefined && !isKnownTimeZone(campaign.time_zone)) fail(`unknown time zone ${JSON.stringify(campaign.time_zone)}`);
}

/** Replaces a campaign's settings (validated first) and updates every column and map derived from them. */
export function setCampaign(catalog: Catalog, campaign: CatalogCampaign): void {
  validateCampaign(campaign, catalog.limits);
  const c = catalog as Mutable<Catalog>;
  const { id } = campaign;
  c.campaigns.set(id, campaign);
  if (!c.campaignAds.has(id)) c.campaignAds.set(id, new Uint32Array(0));
  c.campaignDailyBudgetMicros.set(id, campaign.daily_budget_micros);
  if (campaign.lifetime_budget_micros === undefined) c.campaignLifetimeBudgetMicros.delete(id);
  else c.campaignLifetimeBudgetMicros.set(id, campaign.lifetime_budget_micros);
  c.campaignPacing.set(id, campaign.pacing as PacingMode);
  if (campaign.frequency_cap)
    c.campaignFrequencyCap.set(id, { impressions: campaign.frequency_cap.impressions, windowSeconds: campaign.frequency_cap.window_seconds });
  else c.campaignFrequencyCap.delete(id);
  if (campaign.time_zone && campaign.time_zone !== 'UTC') c.campaignTimeZone.set(id, campaign.time_zone);
  else c.campaignTimeZone.delete(id);
  if (campaign.day_parting) c.campaignDayParting.set(id, campaign.day_parting);
  else c.campaignDayParting.delete(id);
  const type = bidTypes[campaign.bid_type]!;
  for (const ad of catalog.campaignAds.get(id) ?? []) {
    c.bidType[ad] = type;
    c.bidMicros[ad] = campaign.bid_micros;
    c.active[ad] = servable(catalog, ad, campaign.status);
  }
}

function servable(catalog: Catalog, ad: number, campaignStatus: string): number {
  const campaignServes = campaignStatus === 'active' && !catalog.campaignHeld.has(catalog.campaignId[ad]!);
  return campaignServes && catalog.adPaused[ad] === 0 && catalog.adPolicyBlocked[ad] === 0 && catalog.adRetired[ad] === 0 ? 1 : 0;
}

/** Holds an active campaign out of serving (held) or lets it serve again; its ads' `active` follow. */
export function setCampaignHeld(catalog: Catalog, campaignId: string, held: boolean): void {
  const c = catalog as Mutable<Catalog>;
  if (held) c.campaignHeld.add(campaignId);
  else c.campaignHeld.delete(campaignId);
  const status = catalog.campaigns.get(campaignId)?.status ?? 'paused';
  for (const ad of catalog.campaignAds.get(campaignId) ?? []) c.active[ad] = servable(catalog, ad, status);
}

/**
 * Appends ads (already validated, of campaigns the catalog has) under indices size.. onwards, in
 * order, and returns the first; each appended id now names its new row. The engine must have been
 * given the same ads in the same order (its addAds), so the indices agree.
 */
export function appendAds(catalog: Catalog, ads: readonly ServedAd[]): number {
  const c = catalog as Mutable<Catalog>;
  const first = catalog.size;
  const size = first + ads.length;
  for (const key of ['bidType', 'bidMicros', 'landingQuality', 'adPaused', 'adPolicyBlocked', 'adRetired', 'active'] as const) {
    (c as Record<typeof key, Uint8Array | Float32Array | Float64Array>)[key] = grownTo(c[key], size);
  }
  const byCampaign = new Map<string, number[]>();
  ads.forEach((ad, offset) => {
    const index = first + offset;
    const campaign = catalog.campaigns.get(ad.campaign_id);
    if (!campaign) throw new CatalogError(`ad ${ad.id} names unknown campaign ${ad.campaign_id}`);
    for (const [column, value] of [
      [c.adId, ad.id],
      [c.productId, ad.product_id],
      [c.title, ad.title],
      [c.landingUrl, ad.landing_url],
      [c.imageUrl, ad.image_url],
    ] as const)
      (column as GrowingStrings).push(value);
    (c.campaignId as string[]).push(ad.campaign_id);
    (c.advertiserId as string[]).push(ad.advertiser_id);
    (c.category as string[]).push(ad.category);
    c.landingQuality[index] = ad.landing_quality;
    c.bidType[index] = bidTypes[campaign.bid_type]!;
    c.bidMicros[index] = campaign.bid_micros;
    c.adPaused[index] = ad.status === 'paused' ? 1 : 0;
    c.adPolicyBlocked[index] = ad.policy_flags?.some((flag) => catalog.blockedPolicyFlags.has(flag)) ? 1 : 0;
    c.adRetired[index] = 0;
    (c.indexOf as GrowingIndex).set(ad.id, index);
    byCampaign.set(ad.campaign_id, [...(byCampaign.get(ad.campaign_id) ?? []), index]);
  });
  c.size = size;
  for (const [campaignId, added] of byCampaign) c.campaignAds.set(campaignId, Uint32Array.from([...catalog.campaignAds.get(campaignId)!, ...added]));
  for (let index = first; index < size; index++) c.active[index] = servable(catalog, index, catalog.campaigns.get(catalog.campaignId[index]!)!.status);
  return first;
}

/**
 * Undoes the last appendAds (rows `first` onwards) when the engine refused those ads, so catalog
 * and engine indices stay the same; `previous` gives each dropped id's row before the append.
 */
export function dropAppendedAds(catalog: Catalog, first: number, previous: ReadonlyMap<string, number | undefined>): void {
  const c = catalog as Mutable<Catalog>;
  const campaigns = new Set(c.campaignId.slice(first));
  for (const key of ['bidType', 'bidMicros', 'landingQuality', 'adPaused', 'adPolicyBlocked', 'adRetired', 'active'] as const) {
    (c as Record<typeof key, Uint8Array | Float32Array | Float64Array>)[key] = grownTo(c[key], first);
  }
  for (const column of [c.adId, c.productId, c.title, c.landingUrl, c.imageUrl]) (column as GrowingStrings).truncate(first);
  for (const column of [c.campaignId, c.advertiserId, c.category]) (column as string[]).length = first;
  for (const [id, row] of previous) (c.indexOf as GrowingIndex).restore(id, row);
  for (const campaignId of campaigns)
    c.campaignAds.set(
      campaignId,
      catalog.campaignAds.get(campaignId)!.filter((ad) => ad < first),
    );
  c.size = first;
}

/** Retires a row for good: it leaves its campaign's ads and never serves, but its id still finds it until a newer row takes the id. */
export function retireAd(catalog: Catalog, ad: number): void {
  const c = catalog as Mutable<Catalog>;
  c.adRetired[ad] = 1;
  c.active[ad] = 0;
  const campaignId = catalog.campaignId[ad]!;
  const ads = catalog.campaignAds.get(campaignId);
  if (ads?.includes(ad))
    c.campaignAds.set(
      campaignId,
      ads.filter((each) => each !== ad),
    );
}

export function setAdStatus(catalog: Catalog, ad: number, status: 'active' | 'paused'): void {
  const c = catalog as Mutable<Catalog>;
  c.adPaused[ad] = status === 'paused' ? 1 : 0;
  c.active[ad] = servable(catalog, ad, catalog.campaigns.get(catalog.campaignId[ad]!)!.status);
}

export interface CatalogOptions {
  /** Ads with any of these among their policy_flags never serve. */
  blockedPolicyFlags: readonly string[];
  limits: MoneyLimits;
}

/**
 * Builds a catalog one ad row at a time, in index order: from a catalog file, or from the store's
 * ads joined with a model's rows. Text goes straight into packed columns, so a catalog of millions
 * of ads never exists as millions of row objects at once.
 */
export class CatalogBuilder {
  private size = 0;
  private readonly adId = new PackedStringsBuilder();
  private readonly productId = new PackedStringsBuilder();
  private readonly title = new PackedStringsBuilder();
  private readonly landingUrl = new PackedStringsBuilder();
  private readonly imageUrl = new PackedStringsBuilder();
  private readonly campaignId: string[] = [];
  private readonly advertiserId: string[] = [];
  private readonly category: string[] = [];
  /** The same string object for equal values, so a column of few distinct values costs few heap objects. */
  private readonly canonical = new Map<string, string>();
  // Grown by doubling as rows arrive; build() takes their first `size` elements.
  private adPaused = new Uint8Array(1024);
  private adPolicyBlocked = new Uint8Array(1024);
  private adRetired = new Uint8Array(1024);
  private landingQuality = new Float32Array(1024);
  private readonly adsOf: Map<string, number[]>;
  private readonly blocked: Set<string>;

  constructor(
    private readonly campaigns: readonly CatalogCampaign[],
    private readonly options: CatalogOptions = { blockedPolicyFlags: [], limits: defaults },
  ) {
    this.adsOf = new Map(campaigns.map((campaign) => [campaign.id, []]));
    this.blocked = new Set(options.blockedPolicyFlags);
  }

  /** Adds the next row; an ad with status 'archived' is kept retired (its id still finds its campaign). Returns its index. */
  add(ad: ServedAd): number {
    this.checkCampaign(ad.id, ad.campaign_id);
    const index = this.row(ad.id, ad.product_id, ad.title, ad.landing_url, ad.image_url, ad.campaign_id, ad.advertiser_id, ad.category);
    this.fill(index, ad.campaign_id, ad.status ?? 'active', ad.landing_quality, ad.policy_flags?.some((flag) => this.blocked.has(flag)) ?? false);
    return index;
  }

  /** Adds ad `i` of `columns` as the next row, copying its text as bytes. */
  addFrom(columns: AdColumns, i: number): number {
    const { text } = columns;
    const campaignId = columns.coded('campaign_id', i);
    if (!this.adsOf.has(campaignId)) this.checkCampaign(text.id.at(i)!, campaignId);
    const index = this.row(
      text.id.utf8At(i)!,
      text.product_id.utf8At(i)!,
      text.title.utf8At(i)!,
      text.landing_url.utf8At(i)!,
      text.image_url.utf8At(i)!,
      campaignId,
      columns.coded('advertiser_id', i),
      columns.coded('category', i),
    );
    const blocked = this.blocked.size > 0 && columns.policyFlags(i).some((flag) => this.blocked.has(flag));
    this.fill(index, campaignId, statuses[columns.status[i]!]!, columns.numbers.landing_quality[i]!, blocked);
    return index;
  }

  private checkCampaign(adId: string, campaignId: string): void {
    if (!this.adsOf.has(campaignId)) throw new CatalogError(`ad ${adId} names unknown campaign ${campaignId}`);
  }

  private fill(index: number, campaignId: string, status: string, landingQuality: number, policyBlocked: boolean): void {
    const list = this.adsOf.get(campaignId)!;
    this.landingQuality[index] = landingQuality;
    this.adPaused[index] = status === 'paused' ? 1 : 0;
    this.adPolicyBlocked[index] = policyBlocked ? 1 : 0;
    if (status === 'archived') this.adRetired[index] = 1;
    else list.push(index);
  }

  /** Adds a row for an ad the catalog does not have (a model's ad its store lacks): retired, of no campaign. */
  addAbsent(id: string): number {
    const index = this.row(id, '', '', '', '', '', '', '');
    this.adRetired[index] = 1;
    return index;
  }

  build(): Catalog {
    const adId = this.adId.finish();
    let indexOf: PackedIndex;
    try {
      indexOf = new PackedIndex(adId);
    } catch (error) {
      throw new CatalogError((error as Error).message);
    }
    const { size } = this;
    const catalog: Mutable<Catalog> = {
      size,
      campaigns: new Map(),
      campaignAds: new Map([...this.adsOf].map(([campaign, ads]) => [campaign, Uint32Array.from(ads)])),
      campaignDailyBudgetMicros: new Map(),
      campaignLifetimeBudgetMicros: new Map(),
      adPaused: this.adPaused.subarray(0, size),
      adPolicyBlocked: this.adPolicyBlocked.subarray(0, size),
      adRetired: this.adRetired.subarray(0, size),
      active: new Uint8Array(size),
      campaignHeld: new Set(),
      blockedPolicyFlags: this.blocked,
      campaignPacing: new Map(),
      campaignFrequencyCap: new Map(),
      campaignTimeZone: new Map(),
      campaignDayParting: new Map(),
      limits: this.options.limits,
      adId: new GrowingStrings(adId),
      campaignId: this.campaignId,
      advertiserId: this.advertiserId,
      productId: new GrowingStrings(this.productId.finish()),
      category: this.category,
      title: new GrowingStrings(this.title.finish()),
      landingUrl: new GrowingStrings(this.landingUrl.finish()),
      imageUrl: new GrowingStrings(this.imageUrl.finish()),
      bidType: new Uint8Array(size),
      bidMicros: new Float64Array(size),
      landingQuality: this.landingQuality.subarray(0, size),
      indexOf: new GrowingIndex(indexOf),
    };
    for (const campaign of this.campaigns) setCampaign(catalog, { ...campaign });
    return catalog;
  }

  private row(
    id: string | Uint8Array,
    productId: string | Uint8Array,
    title: string | Uint8Array,
    landingUrl: string | Uint8Array,
    imageUrl: string | Uint8Array,
    campaignId: string,
    advertiserId: string,
    category: string,
  ): number {
    const index = this.size++;
    this.adId.push(id);
    this.productId.push(productId);
    this.title.push(title);
    this.landingUrl.push(landingUrl);
    this.imageUrl.push(imageUrl);
    this.campaignId.push(this.interned(campaignId));
    this.advertiserId.push(this.interned(advertiserId));
    this.category.push(this.interned(category));
    if (this.size > this.adRetired.length) {
      const capacity = 2 * this.adRetired.length;
      this.adPaused = grownTo(this.adPaused, capacity);
      this.adPolicyBlocked = grownTo(this.adPolicyBlocked, capacity);
      this.adRetired = grownTo(this.adRetired, capacity);
      this.landingQuality = grownTo(this.landingQuality, capacity);
    }
    return index;
  }

  private interned(value: string): string {
    const known = this.canonical.get(value);
    if (known !== undefined) return known;
    this.canonical.set(value, value);
    return value;
  }
}

/** Builds the catalog; tools and tests that load a model directory as it is take the default settings. */
export function catalogFromJson(json: CatalogJson, options: CatalogOptions = { blockedPolicyFlags: [], limits: defaults }): Catalog {
  const builder = new CatalogBuilder(json.campaigns, options);
  for (const ad of json.ads) builder.add(ad);
  return builder.build();
}
