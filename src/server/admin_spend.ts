// GET /v1/admin/spend, and the spend figures the campaign views show too.
import { localDay } from '../money/local_day';
import { type AdminDeps, type AdminRoute, sendJson } from './admin_route';

/** Spend in micros (nanos / 1000): lifetime and today in the campaign's time zone. */
export function spendOf(deps: AdminDeps, campaign: string, now: number) {
  const { decision } = deps;
  return {
    lifetimeMicros: (deps.spend.state.lifetimeNanos.get(campaign) ?? 0) / 1000,
    todayMicros: (deps.spend.state.dailyNanos.get(`${campaign}@${localDay(now, decision.serving?.catalog.campaignTimeZone.get(campaign)).day}`) ?? 0) / 1000,
    exhausted: decision.serving?.budgets.isExhausted(campaign) ?? false,
  };
}

export const spendRoutes: readonly AdminRoute[] = [
  {
    method: 'get',
    pattern: '/v1/admin/spend',
    handle: ({ exchange, deps }) => {
      const now = Date.now();
      const campaigns = Object.fromEntries(Array.from(deps.spend.state.lifetimeNanos.keys(), (campaign) => [campaign, spendOf(deps, campaign, now)]));
      sendJson(exchange, { events: deps.spend.eventCount(), campaigns });
    },
  },
];
