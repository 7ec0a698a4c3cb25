// Budget pacing (README "Money"): in `even` mode a PI controller keeps a campaign's spend on its target
// curve (uniform over the day, or day-parted by hourly weights) by adjusting the probability that
// the campaign takes part in an auction; `asap` always takes part. The controller is pure (time and
// spend are inputs); Pacer feeds it from the ledger. Money (money.ts) owns the one Pacer of the
// process, so a controller's state outlives the model that was serving when it started.
import type { Catalog } from '../catalog/catalog';
import type { PacingMode } from '../catalog/catalog_json';
import { microsOfNanos } from './amounts';
import type { LedgerState } from './ledger';
import { localDay } from './local_day';
import { spentTodayNanos } from './spend_totals';

export interface PacingGains {
  /** Participation change per unit of spend error (a fraction of the daily budget). */
  proportional: number;
  /** Participation change per unit of error integrated over a day. */
  integral: number;
  /** Floor, so a paced campaign still sees traffic to learn from. */
  minParticipation: number;
}

export const defaultGains: PacingGains = { proportional: 10, integral: 1000, minParticipation: 0.01 };

const dayMs = 86_400_000;

/** Share of the daily budget that should be spent by `msIntoDay`, under hourly weights (24, non-negative). */
export function targetFraction(msIntoDay: number, hourlyWeights?: readonly number[]): number {
  const t = Math.min(Math.max(msIntoDay / dayMs, 0), 1);
  if (!hourlyWeights) return t;
  const total = hourlyWeights.reduce((a, b) => a + b, 0);
  const hour = Math.min(Math.floor(t * 24), 23);
  let done = 0;
  for (let h = 0; h < hour; h++) done += hourlyWeights[h]!;
  return (done + hourlyWeights[hour]! * (t * 24 - hour)) / total;
}

export class PacingController {
  private integral = 0;
  private lastMs: number | undefined;
  participation = 1;

  constructor(
    readonly mode: PacingMode,
    private readonly gains: PacingGains = defaultGains,
    readonly hourlyWeights?: readonly number[],
  ) {}

  /** Feeds the spend so far today (same unit as the budget); returns the new participation probability. */
  update(msIntoDay: number, spentToday: number, dailyBudget: number): number {
    if (this.mode === 'asap' || dailyBudget <= 0) return (this.participation = 1);
    // Day-parting: an hour with no weight is an hour the campaign does not run.
    if (this.hourlyWeights && this.hourlyWeights[Math.min(23, Math.floor(msIntoDay / 3_600_000))] === 0) return (this.participation = 0);
    if (this.lastMs === undefined || msIntoDay < this.lastMs) this.integral = 0; // a new day
    const error = targetFraction(msIntoDay, this.hourlyWeights) - spentToday / dailyBudget; // > 0: behind the curve
    const dt = this.lastMs === undefined || msIntoDay < this.lastMs ? 0 : (msIntoDay - this.lastMs) / dayMs;
    this.lastMs = msIntoDay;
    // Full participation is the resting point: a campaign on its curve (or behind it) is not held
    // back, and one ahead of it is throttled until the curve catches up.
    const unclamped = 1 + this.gains.proportional * error + this.gains.integral * (this.integral + error * dt);
    // Anti-windup: the integral only moves while the output is not pinned at a bound.
    if (unclamped > this.gains.minParticipation && unclamped < 1) this.integral += error * dt;
    this.participation = Math.min(1, Math.max(this.gains.minParticipation, 1 + this.gains.proportional * error + this.gains.integral * this.integral));
    return this.participation;
  }
}

function sameHours(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((weight, hour) => weight === b[hour]));
}

/** Participation probabilities of every campaign, refreshed from the ledger on each tick. */
export class Pacer {
  private readonly controllers = new Map<string, PacingController>();
  /** The campaigns with participation below 1, so a request draws for those alone. */
  private throttled: Array<[campaignId: string, participation: number]> = [];

  /** `settingsOf` names the catalog whose settings (pacing, day-parting, time zone, daily budget) a campaign follows. */
  constructor(
    private readonly settingsOf: (campaignId: string) => Catalog | undefined,
    private readonly state: LedgerState,
  ) {}

  /** Follows the campaign's pacing mode and day-parting (a change starts a fresh controller; the same settings from another catalog keep it). */
  follow(campaignId: string): void {
    const catalog = this.settingsOf(campaignId);
    const mode = catalog?.campaignPacing.get(campaignId);
    const hours = catalog?.campaignDayParting.get(campaignId);
    const current = this.controllers.get(campaignId);
    if (mode && (current?.mode !== mode || !sameHours(current.hourlyWeights, hours))) {
      this.controllers.set(campaignId, new PacingController(mode, defaultGains, hours));
      this.throttled = this.throttled.filter(([throttled]) => throttled !== campaignId);
    }
  }

  /** The campaigns that sit one auction out: each throttled one with probability 1 - participation, one draw of `random` (in [0, 1)) each. */
  sittingOut(random: () => number): string[] {
    const out: string[] = [];
    for (const [campaignId, participation] of this.throttled) if (random() >= participation) out.push(campaignId);
    return out;
  }

  /** The participation probability the campaign's controller last set; 1 for a campaign it does not follow. */
  participationOf(campaignId: string): number {
    return this.controllers.get(campaignId)?.participation ?? 1;
  }

  tick(nowMs: number): void {
    this.throttled = [];
    for (const [campaign, controller] of this.controllers) {
      const catalog = this.settingsOf(campaign);
      const { day, msIntoDay } = localDay(nowMs, catalog?.campaignTimeZone.get(campaign));
      const budget = catalog?.campaignDailyBudgetMicros.get(campaign) ?? 0;
      const spent = microsOfNanos(spentTodayNanos(this.state, campaign, day));
      const participation = controller.update(msIntoDay, spent, budget);
      if (participation < 1) this.throttled.push([campaign, participation]);
    }
  }
}
