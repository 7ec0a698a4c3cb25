// The shapes of catalog rows as train/ writes them (catalog.jsonl) and the catalog store keeps
// them; catalog.ts checks them before anything serves from them.

export interface TargetingCriterion {
  type: 'exact' | 'phrase' | 'broad' | 'negative' | 'geo' | 'device' | 'audience' | 'category' | 'product' | 'placement';
  value: string;
  /** Negated: the rule fails when this criterion matches. */
  not?: boolean;
}

export interface CatalogAd {
  id: string;
  campaign_id: string;
  advertiser_id: string;
  product_id: string;
  category: string;
  format: string;
  title: string;
  keywords: string[];
  landing_url: string;
  image_url: string;
  price_micros: number;
  landing_quality: number;
  rating: number;
  /** Boolean targeting in DNF; absent or empty means untargeted. */
  targeting?: TargetingCriterion[][];
  /** 'paused' keeps the ad out of every auction; absent means active. */
  status?: string;
  /** Policy review flags (e.g. "disapproved"); ads with a flag in config blockedPolicyFlags never serve. */
  policy_flags?: string[];
}

export interface CatalogCampaign {
  id: string;
  advertiser_id: string;
  bid_type: 'CPC' | 'CPM' | 'CPA';
  bid_micros: number;
  daily_budget_micros: number;
  pacing: string;
  status: string;
  /** At most `impressions` per user within `window_seconds`. */
  frequency_cap?: { impressions: number; window_seconds: number };
  /** Total spend cap over the campaign's life; absent means none. */
  lifetime_budget_micros?: number;
  /** IANA time zone of the campaign's days (daily budget, pacing); absent means UTC. */
  time_zone?: string;
  /** Day-parting: 24 non-negative weights, one per local hour, shaping the even pacing curve (0: the campaign does not run that hour). */
  day_parting?: number[];
}

export interface CatalogJson {
  advertisers: Array<{ id: string; name: string; category: string }>;
  campaigns: CatalogCampaign[];
  ads: CatalogAd[];
}

/** How a campaign spends its daily budget over the day: spread along the pacing curve, or as fast as it wins. */
export type PacingMode = 'even' | 'asap';
