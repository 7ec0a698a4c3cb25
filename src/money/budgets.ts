// Budget caps, daily (in the campaign's time zone) and lifetime: the rule of what a campaign may
// still spend. Money (money.ts) applies it to decide which campaigns are eligible; the spend stores
// apply it to cap each charge.
import type { Catalog } from '../catalog/catalog';
import { type Nanos, nanosOfMicros } from './amounts';

export interface CampaignBudgets {
  dailyNanos: Nanos;
  lifetimeNanos: Nanos;
}

/** What a campaign may still spend today, given what it spent today and in all. */
export function remainingNanos(budgets: CampaignBudgets, spentTodayNanos: Nanos, spentLifetimeNanos: Nanos): Nanos {
  return Math.max(0, Math.min(budgets.dailyNanos - spentTodayNanos, budgets.lifetimeNanos - spentLifetimeNanos));
}

/** The campaign's daily and lifetime budgets in nanos as `catalog` sets them (Infinity where it has none). */
export function campaignBudgets(catalog: Catalog | undefined, campaignId: string): CampaignBudgets {
  const daily = catalog?.campaignDailyBudgetMicros.get(campaignId);
  const lifetime = catalog?.campaignLifetimeBudgetMicros.get(campaignId);
  return {
    dailyNanos: daily === undefined || daily <= 0 ? Infinity : nanosOfMicros(daily),
    lifetimeNanos: lifetime === undefined ? Infinity : nanosOfMicros(lifetime),
  };
}
