// Daily budgets and pacing (UTC days; the demo catalog carries no campaign time zone): a campaign
// whose spend reaches its daily budget becomes ineligible at retrieval at once, and eligible again
// when the day turns; paced campaigns enter auctions with the probability their controller sets.
import type { Catalog } from '../catalog/catalog';
import type { NativeEngine } from '../engine/addon';
import type { LedgerState, Nanos } from './ledger';
import { PacingController } from './pacing';

export const dayOf = (timeMs: number): number => Math.floor(timeMs / 86_400_000);

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
    for (const campaign of catalog.campaignAds.keys()) this.check(campaign);
  }

  /** Nanos the campaign may still spend today (Infinity without a daily budget). */
  remainingNanos(campaignId: string, day: number): Nanos {
    const budget = this.catalog.campaignDailyBudgetMicros.get(campaignId);
    if (budget === undefined || budget <= 0) return Infinity;
    return Math.max(0, budget * 1000 - (this.state.dailyNanos.get(`${campaignId}@${day}`) ?? 0));
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
    if (ads) this.engine.setEligibility(ads, new Uint8Array(ads.length).fill(exhausted ? 0 : 1));
  }
}

/** Participation probabilities of every campaign, refreshed from the ledger on each tick. */
export class Pacer {
  private readonly controllers = new Map<string, PacingController>();
  private readonly participationOf = new Map<string, number>();

  constructor(
    private readonly catalog: Catalog,
    private readonly state: LedgerState,
  ) {
    for (const [campaign, mode] of catalog.campaignPacing) this.controllers.set(campaign, new PacingController(mode));
  }

  /** Probability that the campaign's ads enter an auction now (1 when unpaced). */
  participation(campaignId: string): number {
    return this.participationOf.get(campaignId) ?? 1;
  }

  tick(nowMs: number): void {
    const day = dayOf(nowMs);
    const msIntoDay = nowMs - day * 86_400_000;
    for (const [campaign, controller] of this.controllers) {
      const budget = this.catalog.campaignDailyBudgetMicros.get(campaign) ?? 0;
      const spent = (this.state.dailyNanos.get(`${campaign}@${day}`) ?? 0) / 1000;
      this.participationOf.set(campaign, controller.update(msIntoDay, spent, budget));
    }
  }
}
