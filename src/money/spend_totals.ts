// How spend totals are keyed and read: the one spelling of a campaign day's key, shared by the
// ledger, its snapshots and the Redis mirror.
import type { Nanos } from './amounts';
import type { LedgerState } from './ledger_state';

/** The one spelling of a campaign's spend on one of its local days, in LedgerState and snapshots. */
export function dailySpendKey(campaignId: string, day: number): string {
  return `${campaignId}@${day}`;
}

/** The day of a dailySpendKey (campaign ids may themselves hold '@'). */
export function dayOfDailySpendKey(key: string): number {
  return Number(key.slice(key.lastIndexOf('@') + 1));
}

export function spentTodayNanos(state: LedgerState, campaignId: string, day: number): Nanos {
  return state.dailyNanos.get(dailySpendKey(campaignId, day)) ?? 0;
}

export function spentLifetimeNanos(state: LedgerState, campaignId: string): Nanos {
  return state.lifetimeNanos.get(campaignId) ?? 0;
}
