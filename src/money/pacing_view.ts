// Where a campaign stands against its pacing curve today, as the admin console shows it: the
// curve (targetFraction over the campaign's local day and day-parting), its spend so far and the
// participation its controller last set. Read-only over Money.
import type { PacingMode } from '../catalog/catalog_json';
import { type Micros, microsOfNanos } from './amounts';
import { localDay } from './local_day';
import type { Money } from './money';
import { targetFraction } from './pacing';
import { spentTodayNanos } from './spend_totals';

export interface CampaignPacing {
  pacing: PacingMode | undefined;
  /** IANA time zone the campaign's day runs in. */
  timeZone: string;
  /** The campaign's local date, YYYY-MM-DD. */
  today: string;
  /** Local hours since the campaign's midnight, fractional. */
  hoursIntoDay: number;
  /** 0 for a campaign without a daily budget (it has no curve to follow). */
  dailyBudgetMicros: Micros;
  todayMicros: Micros;
  participation: number;
  /** The spend the curve aims at by the start of each local hour 0..24 (25 points, the last the whole budget). */
  targetMicrosByHour: Micros[];
}

export function campaignPacing(money: Money, campaignId: string, nowMs: number): CampaignPacing {
  const catalog = money.settingsOf(campaignId);
  const timeZone = catalog?.campaignTimeZone.get(campaignId) ?? 'UTC';
  const { day, msIntoDay } = localDay(nowMs, timeZone);
  const budget = Math.max(0, catalog?.campaignDailyBudgetMicros.get(campaignId) ?? 0);
  const hours = catalog?.campaignDayParting.get(campaignId);
  return {
    pacing: catalog?.campaignPacing.get(campaignId),
    timeZone,
    today: new Date(day * 86_400_000).toISOString().slice(0, 10),
    hoursIntoDay: msIntoDay / 3_600_000,
    dailyBudgetMicros: budget,
    todayMicros: microsOfNanos(spentTodayNanos(money.store.state, campaignId, day)),
    participation: money.pacer.participationOf(campaignId),
    targetMicrosByHour: Array.from({ length: 25 }, (_, hour) => Math.round(budget * targetFraction(hour * 3_600_000, hours))),
  };
}
