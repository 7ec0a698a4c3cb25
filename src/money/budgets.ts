// Budgets (daily in UTC days, since the demo catalog carries no campaign time zone, and lifetime): a
// campaign whose spend reaches either becomes ineligible at retrieval at once; a daily cap lifts
// when the day turns. Paused ads and campaigns are kept out the same way.
import type { Catalog } from '../catalog/catalog';
import type { NativeEngine } from '../engine/addon';
import type { LedgerState, Nanos } from './ledger';

export const dayOf = (timeMs: number): number => Math.floor(timeMs / 86_400_000);

export interface CampaignBudgets {
  dailyNanos: Nanos;
  lifetimeNanos: Nanos;
}

/** What a campaign may still spend today, given what it spent today and in all. */
export function remainingNanos(budgets: CampaignBudgets, spentTodayNanos: Nanos, spentLifetimeNanos: Nanos): Nanos {
  return Math.max(0, Math.min(budgets.dailyNanos - spentTodayNanos, budgets.lifetimeNanos - spentLifetimeNanos));
}

export class Budgets {
  private readonly exhausted = new Set<string>();
  private day: number;

  constructor(
    private readonly catalog: Catalog,
    private readonly engine: NativeEngine,
    private readonly state: LedgerState,
    nowMs: number,
  ) {
    this.day = dayOf(nowMs);
    const paused = Uint32Array.from(Array.from(catalog.active.keys()).filter((ad) => catalog.active[ad] === 0));
    if (paused.length > 0) engine.setEligibility(paused, new Uint8Array(paused.length));
    for (const campaign of catalog.campaignAds.keys()) this.check(campaign);
  }

  /** The campaign's daily and lifetime budgets in nanos (Infinity where it has none). */
  budgetsOf(campaignId: string): CampaignBudgets {
    const daily = this.catalog.campaignDailyBudgetMicros.get(campaignId);
    const lifetime = this.catalog.campaignLifetimeBudgetMicros.get(campaignId);
    return { dailyNanos: daily === undefined || daily <= 0 ? Infinity : daily * 1000, lifetimeNanos: lifetime === undefined ? Infinity : lifetime * 1000 };
  }

  /** Nanos the campaign may still spend today under both caps (Infinity without either). */
  remainingNanos(campaignId: string, day: number): Nanos {
    return remainingNanos(this.budgetsOf(campaignId), this.state.dailyNanos.get(`${campaignId}@${day}`) ?? 0, this.state.lifetimeNanos.get(campaignId) ?? 0);
  }

  /** Re-checks one campaign after a charge, and every campaign when the day has turned. */
  check(campaignId: string, nowMs = Date.now()): void {
    const today = dayOf(nowMs);
    if (today !== this.day) {
      this.day = today;
      for (const campaign of [...this.exhausted]) this.setExhausted(campaign, this.remainingNanos(campaign, today) <= 0);
    }
    this.setExhausted(campaignId, this.remainingNanos(campaignId, today) <= 0);
  }

  isExhausted(campaignId: string): boolean {
    return this.exhausted.has(campaignId);
  }

  private setExhausted(campaignId: string, exhausted: boolean): void {
    if (exhausted === this.exhausted.has(campaignId)) return;
    if (exhausted) this.exhausted.add(campaignId);
    else this.exhausted.delete(campaignId);
    const ads = this.catalog.campaignAds.get(campaignId);
    // A paused ad stays out when its campaign's budget comes back.
    if (ads) this.engine.setEligibility(ads, Uint8Array.from(ads, (ad) => (exhausted ? 0 : this.catalog.active[ad]!)));
  }
}
