// Daily budgets (UTC days; the demo catalog carries no campaign time zone): a campaign whose spend
// reaches its daily budget becomes ineligible at retrieval at once, and eligible again when the
// day turns.
import type { Catalog } from '../catalog/catalog';
import type { NativeEngine } from '../engine/addon';
import type { LedgerState, Nanos } from './ledger';

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
