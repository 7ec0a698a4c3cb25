// The catalog store's rows as callers see them: JSON-ready, snake_case like catalog.jsonl, absent
// optional values as null. Money is integer micros; times are ISO-8601 UTC instants except flight
// bounds, which are wall-clock times in the campaign's time zone.
import type { TargetingCriterion } from '../catalog/catalog_json';
import type { StoreEntity } from './errors';

export type Micros = number;
export type RowStatus = 'active' | 'paused' | 'archived';
export type BidType = 'CPC' | 'CPM' | 'CPA';
export type Pacing = 'even' | 'asap';
/** Boolean targeting in DNF: the ad matches when all criteria of any one rule hold; empty or null: untargeted. */
export type TargetingRules = TargetingCriterion[][];

export interface RowMeta {
  /** 1 at creation, +1 at every update or archive: the ETag of optimistic concurrency. */
  version: number;
  created_at: string;
  updated_at: string;
  archived_at: string | null;
  status: RowStatus;
}

export interface AdvertiserRow extends RowMeta {
  id: string;
  name: string;
  category: string | null;
}

export interface CampaignRow extends RowMeta {
  id: string;
  advertiser_id: string;
  name: string;
  bid_type: BidType;
  /** Bid per billable event: click (CPC), thousand impressions (CPM), conversion (CPA). */
  bid_micros: Micros;
  /** 0: no daily budget. */
  daily_budget_micros: Micros;
  lifetime_budget_micros: Micros | null;
  pacing: Pacing;
  frequency_cap: { impressions: number; window_seconds: number } | null;
  /** IANA zone of the campaign's days, day-parting hours and flight bounds. */
  time_zone: string;
  /** 24 non-negative weights, one per local hour. */
  day_parting: number[] | null;
  /** Wall-clock "YYYY-MM-DDTHH:MM:SS" in time_zone; null: no bound. The campaign serves in [start, end). */
  flight_start: string | null;
  flight_end: string | null;
  /** Rules every ad of the campaign must also satisfy; null: none. */
  targeting: TargetingRules | null;
}

export interface AdRow extends RowMeta {
  id: string;
  campaign_id: string;
  /** The campaign's advertiser, kept on the ad so that lists filter by it without a join. */
  advertiser_id: string;
  product_id: string;
  category: string;
  format: string;
  title: string;
  keywords: string[];
  landing_url: string;
  image_url: string;
  price_micros: Micros;
  /** Landing-page quality in (0, 1]. */
  landing_quality: number;
  /** Product rating in [0, 5]. */
  rating: number;
  targeting: TargetingRules | null;
  policy_flags: string[];
}

export interface EntityRows {
  advertiser: AdvertiserRow;
  campaign: CampaignRow;
  ad: AdRow;
}

export type ChangeOp = 'create' | 'update' | 'archive';

/** One committed write; seq is gapless and increases in commit order. */
export interface Change {
  seq: number;
  entity: StoreEntity;
  id: string;
  version: number;
  op: ChangeOp;
  at: string;
  /** The fields an update changed, so a follower can tell a pause from new content; [] for a create or an archive; ['*'] when unknown (written by an older version). */
  fields: string[];
}

export interface Page<T> {
  items: T[];
  /** Opaque; pass it back as `cursor` for the next page. Null on the last page. */
  next_cursor: string | null;
}
