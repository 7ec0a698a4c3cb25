// Where spend, event idempotency and frequency history live: in this process with the durable local
// ledger (the default), or in Redis when REDIS_URL is set so several daemons share budgets. Both
// decide an event the same way: refuse a replayed event id and an out-of-order or repeated event of
// one served ad, charge the price capped at what the campaign's daily and lifetime budgets have
// left, and count an impression towards frequency caps.
import { RequestError } from '../errors';
import { type CampaignBudgets, remainingNanos } from './budgets';
import type { Nanos } from './amounts';
import type { Ledger, LedgerEntry, LedgerState } from './ledger';
import type { Counters, ReportFields } from './report_cells';
import { spentLifetimeNanos, spentTodayNanos } from './spend_totals';

export interface Charge extends Omit<LedgerEntry, 'chargeNanos' | 'report'> {
  report: ReportFields;
  /** The auction price when this is the bid type's billable event, else 0. */
  priceNanos: Nanos;
  budgets: CampaignBudgets;
}

export type Refusal = 'duplicate_event' | 'duplicate_type' | 'needs_impression' | 'needs_click' | 'outside_attribution_window';

export function refusalError(refusal: Refusal, charge: Charge): RequestError {
  switch (refusal) {
    case 'duplicate_event':
      return new RequestError(409, 'duplicate_event', `event ${charge.id} was already recorded`);
    case 'duplicate_type':
      return new RequestError(409, 'duplicate_event', `this ad's ${charge.type} was already recorded`);
    case 'needs_impression':
      return new RequestError(422, 'out_of_order', 'a click needs an impression of the same ad first');
    case 'needs_click':
      return new RequestError(422, 'out_of_order', 'a conversion needs a click on the same ad first');
    case 'outside_attribution_window':
      return new RequestError(422, 'outside_attribution_window', 'the conversion came after the attribution window of its click');
  }
}

/**
 * The event-order rule of one served ad: impression, then click, then conversion, each at most
 * once, and a conversion only within the attribution window after its click.
 */
export function refusalOf(
  seen: ReadonlyMap<LedgerEntry['type'], number> | undefined,
  type: LedgerEntry['type'],
  timeMs: number,
  attributionWindowMs: number,
): Refusal | undefined {
  if (seen?.has(type)) return 'duplicate_type';
  if (type === 'click' && !seen?.has('impression')) return 'needs_impression';
  if (type === 'conversion') {
    const clickedAt = seen?.get('click');
    if (clickedAt === undefined) return 'needs_click';
    if (timeMs - clickedAt > attributionWindowMs) return 'outside_attribution_window';
  }
  return undefined;
}

export interface SpendStore {
  /** Spend totals and impression history as this process sees them (a mirror, when shared). */
  readonly state: LedgerState;
  /** Set when the store can no longer take events safely. */
  readonly failure: Error | undefined;
  /** Events recorded so far (by every replica, when shared). */
  eventCount(): number;
  /** The billing counters of the report cells whose local day lies in [fromDay, toDay], as billed. */
  reportCells(fromDay: number, toDay: number): Promise<Iterable<[string, Counters]>>;
  /** Records the event durably and resolves with its charge; rejects with a RequestError when refused. */
  record(charge: Charge): Promise<Nanos>;
  /** A user's impression times per campaign, ascending, from `sinceMs` on (possibly earlier); rejects after `timeoutMs`. */
  impressionsOf(user: string, sinceMs: number, timeoutMs: number): Promise<Map<string, number[]> | undefined>;
  close(): Promise<void>;
}

/** The single-process store: the in-memory state of the durable local ledger. */
export class LocalSpendStore implements SpendStore {
  constructor(
    private readonly ledger: Ledger,
    private readonly attributionWindowMs: number,
  ) {}

  get state(): LedgerState {
    return this.ledger.state;
  }

  get failure(): Error | undefined {
    return this.ledger.failure;
  }

  eventCount(): number {
    return this.ledger.eventsRecorded;
  }

  async record(charge: Charge): Promise<Nanos> {
    const { ledger } = this;
    const { state } = ledger;
    // Checked and applied without an await in between, so a concurrent duplicate is refused.
    const refusal = ledger.knows(charge.id) ? 'duplicate_event' : refusalOf(ledger.served(charge.serve), charge.type, charge.timeMs, this.attributionWindowMs);
    if (refusal) throw refusalError(refusal, charge);
    const { priceNanos, budgets, ...entry } = charge;
    const left = remainingNanos(budgets, spentTodayNanos(state, charge.campaignId, charge.day), spentLifetimeNanos(state, charge.campaignId));
    const chargeNanos = Math.min(priceNanos, left);
    await ledger.append({ ...entry, chargeNanos });
    return chargeNanos;
  }

  reportCells(fromDay: number, toDay: number): Promise<Iterable<[string, Counters]>> {
    return Promise.resolve(Array.from(this.ledger.report.between(fromDay, toDay), ([key, counters]) => [key, counters.slice()]));
  }

  impressionsOf(user: string): Promise<Map<string, number[]> | undefined> {
    return Promise.resolve(this.ledger.state.impressions.get(user));
  }

  close(): Promise<void> {
    return this.ledger.close();
  }
}
