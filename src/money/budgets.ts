// Budgets (daily, in the campaign's time zone, and lifetime): a campaign whose spend reaches either
// becomes ineligible at retrieval at once; a daily cap lifts when its local day turns (seen by the
// periodic refresh). Paused ads and campaigns are kept out the same way.
import type { Catalog } from '../catalog/catalog';
import type { NativeEngine } from '../engine/addon';
import type { LedgerState, Nanos } from './ledger';
import { localDay } from './local_day';


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

  constructor(
    private readonly catalog: Catalog,
    private readonly engine: NativeEngine,
    private readonly state: LedgerState,
    nowMs: number,
  ) {
    const paused = Uint32Array.from(Array.from(catalog.active.keys()).filter((ad) => catalog.active[ad] === 0));
    if (paused.length > 0) engine.setEligibility(paused, new Uint8Array(paused.length));
    for (const campaign of catalog.campaignAds.keys()) this.check(campaign, nowMs);
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

  /** The campaign's day (in its time zone) at `nowMs`. */
  dayOf(campaignId: string, nowMs: number): number {
    return localDay(nowMs, this.catalog.campaignTimeZone.get(campaignId)).day;
  }

  /** Re-checks one campaign, after a charge or a change of its spend. */
  check(campaignId: string, nowMs: number): void {
    this.setExhausted(campaignId, this.remainingNanos(campaignId, this.dayOf(campaignId, nowMs)) <= 0);
  }

  /** Re-checks a campaign whose settings changed and pushes its ads' eligibility (status, budgets) to the engine. */
  campaignChanged(campaignId: string, nowMs: number): void {
    this.setExhausted(campaignId, this.remainingNanos(campaignId, this.dayOf(campaignId, nowMs)) <= 0, true);
  }

  /** Pushes one ad's eligibility after its own status changed. */
  adChanged(ad: number): void {
    this.engine.setEligibility(Uint32Array.of(ad), Uint8Array.of(this.exhausted.has(this.catalog.campaignId[ad]!) ? 0 : this.catalog.active[ad]!));
  }

  /** Re-checks every exhausted campaign: a daily cap lifts once the campaign's day has turned. */
  refresh(nowMs: number): void {
    for (const campaign of [...this.exhausted]) this.check(campaign, nowMs);
  }

  isExhausted(campaignId: string): boolean {
    return this.exhausted.has(campaignId);
  }

  private setExhausted(campaignId: string, exhausted: boolean, force = false): void {
    if (exhausted === this.exhausted.has(campaignId) && !force) return;
    if (exhausted) this.exhausted.add(campaignId);
    else this.exhausted.delete(campaignId);
    const ads = this.catalog.campaignAds.get(campaignId);
    // A paused ad stays out when its campaign's budget comes back.
    if (ads) this.engine.setEligibility(ads, Uint8Array.from(ads, (ad) => (exhausted ? 0 : this.catalog.active[ad]!)));
  }
}
