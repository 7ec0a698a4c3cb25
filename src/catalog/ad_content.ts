// What an ad serves with, as one number: the fields its embedding, targeting and display depend
// on, with its campaign's bid type and targeting. Two rows with the same key serve alike, so a
// change that keeps the key (status, keywords) needs no new embedding, and one that moves it does.
import { createHash } from 'node:crypto';

import type { TargetingCriterion } from './catalog_json';

type Rules = readonly (readonly TargetingCriterion[])[];

export interface AdContent {
  campaign_id: string;
  advertiser_id: string;
  product_id: string;
  category: string;
  format: string;
  title: string;
  landing_url: string;
  image_url: string;
  price_micros: number;
  landing_quality: number;
  rating: number;
  targeting?: Rules | null;
  policy_flags?: readonly string[] | null;
}

export interface CampaignContent {
  bid_type: string;
  targeting?: Rules | null;
}

/** 48 bits of SHA-1 over the content: exact in a double, and a collision between an ad's successive versions is negligible. */
export function adContentKey(ad: AdContent, campaign: CampaignContent): number {
  const content = [
    ad.campaign_id,
    ad.advertiser_id,
    ad.product_id,
    ad.category,
    ad.format,
    ad.title,
    ad.landing_url,
    ad.image_url,
    ad.price_micros,
    ad.landing_quality,
    ad.rating,
    ad.targeting ?? [],
    ad.policy_flags ?? [],
    campaign.bid_type,
    campaign.targeting ?? [],
  ];
  return createHash('sha1').update(JSON.stringify(content)).digest().readUIntBE(0, 6);
}

/**
 * The rules an ad serves under: its own and its campaign's must both hold. Both are in DNF (any
 * rule, all of its criteria), so the conjunction is every pairing of a campaign rule with an ad rule.
 */
export function effectiveTargeting(ad: Rules | null | undefined, campaign: Rules | null | undefined): TargetingCriterion[][] {
  const own = ad?.length ? ad : [[]];
  const outer = campaign?.length ? campaign : [[]];
  const rules = outer.flatMap((campaignRule) => own.map((adRule) => [...campaignRule, ...adRule]));
  return rules.every((rule) => rule.length === 0) ? [] : rules;
}
