// The ad catalog as columns indexed by the dense ad index shared with the engine.
import type { CatalogJson } from '../engine/model_dir';
import type { PacingMode } from '../money/pacing';
import { checkTimeZone } from '../money/local_day';
import { BidType } from '../protocol/schema';

export type Micros = number;

export interface Catalog {
  readonly size: number;
  readonly adId: readonly string[];
  readonly campaignId: readonly string[];
  readonly advertiserId: readonly string[];
  readonly productId: readonly string[];
  readonly category: readonly string[];
  readonly title: readonly string[];
  readonly landingUrl: readonly string[];
  readonly imageUrl: readonly string[];
  /** BidType enum value of the ad's campaign. */
  readonly bidType: Uint8Array;
  /** The campaign's bid per billable event: click (CPC), thousand impressions (CPM), conversion (CPA). */
  readonly bidMicros: Float64Array;
  /** Landing-page quality in (0, 1]. */
  readonly landingQuality: Float32Array;
  /** Dense ad index of each ad id. */
  readonly indexOf: ReadonlyMap<string, number>;
  /** Ad indices of each campaign. */
  readonly campaignAds: ReadonlyMap<string, Uint32Array>;
  readonly campaignDailyBudgetMicros: ReadonlyMap<string, number>;
  readonly campaignLifetimeBudgetMicros: ReadonlyMap<string, number>;
  /** Ads that may serve: active ads of active campaigns (1) or not (0). */
  readonly active: Uint8Array;
  readonly campaignPacing: ReadonlyMap<string, PacingMode>;
  readonly campaignFrequencyCap: ReadonlyMap<string, { impressions: number; windowSeconds: number }>;
  /** IANA time zone of each campaign that has one other than UTC. */
  readonly campaignTimeZone: ReadonlyMap<string, string>;
}

const bidTypes: Record<string, BidType> = { CPC: BidType.Cpc, CPM: BidType.Cpm, CPA: BidType.Cpa };

export function catalogFromJson(json: CatalogJson): Catalog {
  const campaigns = new Map(json.campaigns.map((campaign) => [campaign.id, campaign]));
  for (const campaign of json.campaigns) {
    if (campaign.time_zone === undefined) continue;
    try {
      checkTimeZone(campaign.time_zone);
    } catch {
      throw new Error(`campaign ${campaign.id} has unknown time zone ${JSON.stringify(campaign.time_zone)}`);
    }
  }
  const size = json.ads.length;
  const bidType = new Uint8Array(size);
  const bidMicros = new Float64Array(size);
  const landingQuality = new Float32Array(size);
  const indexOf = new Map<string, number>();
  json.ads.forEach((ad, index) => {
    const campaign = campaigns.get(ad.campaign_id);
    if (!campaign) throw new Error(`ad ${ad.id} names unknown campaign ${ad.campaign_id}`);
    const type = bidTypes[campaign.bid_type];
    if (type === undefined) throw new Error(`campaign ${campaign.id} has unknown bid type ${campaign.bid_type}`);
    bidType[index] = type;
    bidMicros[index] = campaign.bid_micros;
    landingQuality[index] = ad.landing_quality;
    indexOf.set(ad.id, index);
  });
  const adsOf = new Map<string, number[]>();
  json.ads.forEach((ad, index) => {
    const list = adsOf.get(ad.campaign_id);
    if (list) list.push(index);
    else adsOf.set(ad.campaign_id, [index]);
  });
  return {
    size,
    campaignAds: new Map([...adsOf].map(([campaign, ads]) => [campaign, Uint32Array.from(ads)])),
    campaignDailyBudgetMicros: new Map(json.campaigns.map((campaign) => [campaign.id, campaign.daily_budget_micros])),
    campaignLifetimeBudgetMicros: new Map(
      json.campaigns.flatMap((campaign) => (campaign.lifetime_budget_micros === undefined ? [] : [[campaign.id, campaign.lifetime_budget_micros] as const])),
    ),
    active: Uint8Array.from(json.ads, (ad) => (ad.status !== 'paused' && campaigns.get(ad.campaign_id)!.status !== 'paused' ? 1 : 0)),
    campaignPacing: new Map(json.campaigns.map((campaign) => [campaign.id, campaign.pacing === 'asap' ? 'asap' : 'even'])),
    campaignFrequencyCap: new Map(
      json.campaigns.flatMap((campaign) =>
        campaign.frequency_cap ? [[campaign.id, { impressions: campaign.frequency_cap.impressions, windowSeconds: campaign.frequency_cap.window_seconds }] as const] : [],
      ),
    ),
    campaignTimeZone: new Map(json.campaigns.flatMap((campaign) => (campaign.time_zone && campaign.time_zone !== 'UTC' ? [[campaign.id, campaign.time_zone] as const] : []))),
    adId: json.ads.map((ad) => ad.id),
    campaignId: json.ads.map((ad) => ad.campaign_id),
    advertiserId: json.ads.map((ad) => ad.advertiser_id),
    productId: json.ads.map((ad) => ad.product_id),
    category: json.ads.map((ad) => ad.category),
    title: json.ads.map((ad) => ad.title),
    landingUrl: json.ads.map((ad) => ad.landing_url),
    imageUrl: json.ads.map((ad) => ad.image_url),
    bidType,
    bidMicros,
    landingQuality,
    indexOf,
  };
}
