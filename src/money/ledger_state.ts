// What the ledger records (one entry per accepted event) and what it holds in memory; apart from
// ledger.ts so that its in-memory state and its snapshots use them without importing the ledger back.
import type { Nanos } from './amounts';
import type { ReportFields } from './report_cells';

export interface LedgerEntry {
  /** Event id (idempotency key). */
  id: string;
  /** Identifies the served ad instance (an opaque key derived from its event token). */
  serve: string;
  type: 'impression' | 'click' | 'conversion';
  campaignId: string;
  adId: string;
  chargeNanos: Nanos;
  /** UTC day (days since epoch) the charge counts against. */
  day: number;
  timeMs: number;
  /** The served request's user ('' when anonymous); impressions feed frequency caps. */
  user: string;
  /** Where the event counts in reports (absent from entries written before reports existed). */
  report?: ReportFields;
}

/** Spend totals and impression history: what budgets, pacing, reports and frequency caps read. */
export interface LedgerState {
  lifetimeNanos: Map<string, Nanos>;
  /** Key: dailySpendKey(campaignId, day) (spend_totals.ts); the local ledger keeps only the days around today. */
  dailyNanos: Map<string, Nanos>;
  /** Impression times (ms) per user, then per campaign, ascending; pruned by FrequencyCaps and by expiry. */
  impressions: Map<string, Map<string, number[]>>;
}

export function emptyState(): LedgerState {
  return { lifetimeNanos: new Map(), dailyNanos: new Map(), impressions: new Map() };
}
