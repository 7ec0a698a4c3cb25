// The one owner of money state in the process: spend (through the spend store), which campaigns
// their budgets have exhausted, and the pacing controllers. It is created once by the composition
// root and outlives model swaps: each serving model attaches its engine as an eligibility port when
// it opens and detaches it when it closes, so a swap neither restarts pacing nor forgets a cap, and
// each event is charged and re-checked here once, whatever the number of models serving.
import type { Catalog } from '../catalog/catalog';
import { type Micros, microsOfNanos, type Nanos } from './amounts';
import { type CampaignBudgets, campaignBudgets, remainingNanos } from './budgets';
import { localDay } from './local_day';
import { Pacer } from './pacing';
import { localHour } from './report_cells';
import type { Charge, SpendStore } from './spend_store';
import { spentLifetimeNanos, spentTodayNanos } from './spend_totals';

/**
 * Where eligibility changes reach one serving engine (the engine's setEligibility: 0 keeps an ad
 * out of retrieval). The catalog it is attached with gives that engine's ad indices and statuses.
 */
export interface EligibilitySink {
  setEligibility(ads: Uint32Array, eligible: Uint8Array): void;
}

/** An event to charge: the spend store's Charge without what Money fills in (the campaign's day, budgets and report cell). */
export type Billable = Omit<Charge, 'day' | 'budgets' | 'report'> & {
  /** What places the event in report cells besides its campaign's zone and day. */
  served: { advertiserId: string; placement: string; issuedMs: number };
};

export interface CampaignSpend {
  lifetimeMicros: Micros;
  /** Today in the campaign's time zone. */
  todayMicros: Micros;
  exhausted: boolean;
}

export class Money {
  /** Participation of throttled campaigns; every serving model's exclusions read this one. */
  readonly pacer: Pacer;
  /** Attached catalogs, oldest first, with the engine each one's eligibility goes to. */
  private readonly ports = new Map<Catalog, EligibilitySink>();
  private readonly exhausted = new Set<string>();

  constructor(readonly store: SpendStore) {
    this.pacer = new Pacer((campaignId) => this.settingsOf(campaignId), store.state);
  }

  /**
   * The catalog whose settings (budgets, time zone, pacing) a campaign follows: the longest attached
   * one that lists it, so a model under warm-up never changes what the serving ones decide.
   */
  settingsOf(campaignId: string): Catalog | undefined {
    for (const catalog of this.ports.keys()) if (catalog.campaigns.has(campaignId)) return catalog;
    return undefined;
  }

  /** Starts pushing eligibility to a newly opened engine: its paused ads and exhausted campaigns go out at once. */
  attach(catalog: Catalog, engine: EligibilitySink, nowMs: number): void {
    this.ports.set(catalog, engine);
    const paused = Uint32Array.from(Array.from(catalog.active.keys()).filter((ad) => catalog.active[ad] === 0));
    if (paused.length > 0) engine.setEligibility(paused, new Uint8Array(paused.length));
    for (const campaignId of catalog.campaignAds.keys()) {
      this.check(campaignId, nowMs);
      if (this.exhausted.has(campaignId)) this.push(catalog, engine, campaignId);
    }
    for (const campaignId of catalog.campaignPacing.keys()) this.pacer.follow(campaignId);
  }

  /** Stops pushing to an engine that is closing; its campaigns keep their spend, caps and controllers. */
  detach(catalog: Catalog): void {
    this.ports.delete(catalog);
  }

  budgetsOf(campaignId: string): CampaignBudgets {
    return campaignBudgets(this.settingsOf(campaignId), campaignId);
  }

  /** The campaign's time zone, from the catalog it follows. */
  timeZoneOf(campaignId: string): string {
    return this.settingsOf(campaignId)?.campaignTimeZone.get(campaignId) ?? 'UTC';
  }

  /** The campaign's day (in its time zone) at `nowMs`. */
  dayOf(campaignId: string, nowMs: number): number {
    return localDay(nowMs, this.timeZoneOf(campaignId)).day;
  }

  /** Nanos the campaign may still spend on `day` under both caps (Infinity without either). */
  remainingNanos(campaignId: string, day: number): Nanos {
    const { state } = this.store;
    return remainingNanos(this.budgetsOf(campaignId), spentTodayNanos(state, campaignId, day), spentLifetimeNanos(state, campaignId));
  }

  /** Campaigns out of budget now. */
  get exhaustedCount(): number {
    return this.exhausted.size;
  }

  isExhausted(campaignId: string): boolean {
    return this.exhausted.has(campaignId);
  }

  spendOf(campaignId: string, nowMs: number): CampaignSpend {
    const { state } = this.store;
    return {
      lifetimeMicros: microsOfNanos(spentLifetimeNanos(state, campaignId)),
      todayMicros: microsOfNanos(spentTodayNanos(state, campaignId, this.dayOf(campaignId, nowMs))),
      exhausted: this.isExhausted(campaignId),
    };
  }

  /** Every campaign that has spent, and the number of events recorded. */
  spendReport(nowMs: number): { events: number; campaigns: Record<string, CampaignSpend> } {
    const campaigns = Object.fromEntries(Array.from(this.store.state.lifetimeNanos.keys(), (campaignId) => [campaignId, this.spendOf(campaignId, nowMs)]));
    return { events: this.store.eventCount(), campaigns };
  }

  /**
   * Records one event and resolves with its charge: the price, capped at what the campaign's budgets
   * have left. A refused event rejects with the store's RequestError. A charge that spends the
   * budget takes the campaign out of every attached engine.
   */
  async charge(billable: Billable): Promise<Nanos> {
    const { served, ...event } = billable;
    const { campaignId, timeMs } = event;
    const timeZone = this.timeZoneOf(campaignId);
    // The event's cell is picked from the same local clock as the day its charge counts against.
    const { day, msIntoDay } = localDay(timeMs, timeZone);
    const report = {
      advertiserId: served.advertiserId,
      placement: served.placement,
      timeZone,
      hour: day * 24 + Math.floor(msIntoDay / 3_600_000),
      servedHour: localHour(served.issuedMs, timeZone),
      billedValueNanos: event.priceNanos,
    };
    const chargeNanos = await this.store.record({ ...event, day, report, budgets: this.budgetsOf(campaignId) });
    this.check(campaignId, timeMs);
    return chargeNanos;
  }

  /** Re-checks campaigns whose spend changed elsewhere (another replica, through the shared store). */
  spendChanged(campaignIds: Iterable<string>, nowMs: number): void {
    for (const campaignId of campaignIds) this.check(campaignId, nowMs);
  }

  /** Follows a campaign whose settings changed in every attached catalog: eligibility (status, budgets) and pacing. */
  campaignChanged(campaignId: string, nowMs: number): void {
    this.setExhausted(campaignId, this.remainingNanos(campaignId, this.dayOf(campaignId, nowMs)) <= 0, true);
    this.pacer.follow(campaignId);
    this.pacer.tick(nowMs);
  }

  /** Pushes one ad's eligibility after its own status changed in every attached catalog. */
  adChanged(adId: string): void {
    for (const [catalog, engine] of this.ports) {
      const ad = catalog.indexOf.get(adId);
      if (ad !== undefined) engine.setEligibility(Uint32Array.of(ad), Uint8Array.of(this.eligible(catalog, ad)));
    }
  }

  /** The periodic refresh: pacing follows the ledger, and a daily cap lifts once its campaign's day has turned. */
  tick(nowMs: number): void {
    this.pacer.tick(nowMs);
    for (const campaignId of [...this.exhausted]) this.check(campaignId, nowMs);
  }

  /** The one place budget eligibility is decided: a campaign with nothing left today or in all is out. */
  private check(campaignId: string, nowMs: number): void {
    this.setExhausted(campaignId, this.remainingNanos(campaignId, this.dayOf(campaignId, nowMs)) <= 0);
  }

  private setExhausted(campaignId: string, exhausted: boolean, force = false): void {
    if (exhausted === this.exhausted.has(campaignId) && !force) return;
    if (exhausted) this.exhausted.add(campaignId);
    else this.exhausted.delete(campaignId);
    for (const [catalog, engine] of this.ports) this.push(catalog, engine, campaignId);
  }

  private push(catalog: Catalog, engine: EligibilitySink, campaignId: string): void {
    const ads = catalog.campaignAds.get(campaignId);
    if (ads)
      engine.setEligibility(
        ads,
        Uint8Array.from(ads, (ad) => this.eligible(catalog, ad)),
      );
  }

  /** A paused ad stays out when its campaign's budget comes back. */
  private eligible(catalog: Catalog, ad: number): number {
    return this.exhausted.has(catalog.campaignId[ad]!) ? 0 : catalog.active[ad]!;
  }
}
