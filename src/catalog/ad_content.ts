// What an ad serves with: the fields its embedding, targeting and display depend on. A change of
// only its status (or its keywords, which serving does not read) keeps the ad as it is served; any
// other change, or one of its campaign's bid type or targeting, needs it embedded again.
import type { CatalogAd, TargetingCriterion } from './catalog_json';

type Rules = readonly (readonly TargetingCriterion[])[];

/** Fields of an ad that change nothing it is served with. */
const servingNeutralAdFields: ReadonlySet<string> = new Set(['status', 'keywords']);
/** Fields of a campaign its ads are embedded and targeted with. */
const campaignContentFields: ReadonlySet<string> = new Set(['bid_type', 'targeting']);

/** Whether an ad change of these fields needs the ad embedded again ('*': fields unknown). */
export const adContentChanged = (fields: readonly string[]): boolean => fields.some((field) => !servingNeutralAdFields.has(field));

/** Whether a campaign change of these fields needs every ad of it embedded again. */
export const campaignContentChanged = (fields: readonly string[]): boolean => fields.some((field) => field === '*' || campaignContentFields.has(field));

/** The fields of an ad row (catalog.jsonl's or the store's) it is served with. */
export type AdContent = Pick<
  CatalogAd,
  'campaign_id' | 'advertiser_id' | 'product_id' | 'category' | 'format' | 'title' | 'landing_url' | 'image_url' | 'price_micros' | 'landing_quality' | 'rating'
> & { targeting?: Rules | null; policy_flags?: readonly string[] | null };

/** An ad row as a catalog is built from it (catalog.jsonl's or the store's); status 'archived' keeps it retired. */
export type ServedAd = AdContent & { id: string; status?: string };

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
