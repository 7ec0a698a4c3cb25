import { describe, expect, it } from 'vitest';

import { PacingController, targetFraction } from '../../src/money/pacing';
import { seededRandom } from '../helpers/random';

// A synthetic day: auction opportunities per minute follow a diurnal curve; the campaign wins a
// share of those it enters and pays a random price. Unthrottled it could spend about 3x its budget.
function simulateDay(controller: PacingController, budget: number, seed: number, hourlyWeights?: number[]) {
  const random = seededRandom(seed);
  const traffic = (minute: number): number => 40 + 30 * Math.sin(((minute / 60 - 9) / 24) * 2 * Math.PI); // peaks mid-afternoon
  let spent = 0;
  const hourly: number[] = [];
  for (let minute = 0; minute < 1440; minute++) {
    const ms = minute * 60_000;
    const participation = controller.update(ms, spent, budget);
    const opportunities = Math.round(traffic(minute));
    for (let i = 0; i < opportunities; i++) {
      if (spent >= budget) break;
      if (random() < participation && random() < 0.3) spent = Math.min(budget, spent + 0.5 + random() * 1.5); // hard cap
    }
    if (minute % 60 === 59) hourly.push(spent);
  }
  return { spent, hourly, target: Array.from({ length: 24 }, (_, h) => budget * targetFraction((h + 1) * 3_600_000, hourlyWeights)) };
}

describe('pacing', () => {
  const budget = 6000; // unthrottled: ~57K opportunities x 0.3 x 1.25 ≈ 3.5x the budget

  it('even: spends the daily budget within ±5 % and follows the uniform curve hour by hour', () => {
    for (const seed of [1, 2, 3]) {
      const { spent, hourly, target } = simulateDay(new PacingController('even'), budget, seed);
      expect(Math.abs(spent - budget) / budget).toBeLessThanOrEqual(0.05);
      hourly.forEach((value, h) => expect(Math.abs(value - target[h]!) / budget).toBeLessThanOrEqual(0.05));
    }
  });

  it('even with day-parting: follows the weighted curve', () => {
    const weights = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 4, 4, 3, 2, 1, 0];
    const { spent, hourly, target } = simulateDay(new PacingController('even', undefined, weights), budget, 7, weights);
    expect(Math.abs(spent - budget) / budget).toBeLessThanOrEqual(0.05);
    hourly.forEach((value, h) => expect(Math.abs(value - target[h]!) / budget).toBeLessThanOrEqual(0.05));
    expect(hourly[5]).toBeLessThan(budget * 0.01); // nothing spent before the first weighted hour
  });

  it('asap: takes part in every auction and exhausts the budget early', () => {
    const { spent, hourly } = simulateDay(new PacingController('asap'), budget, 1);
    expect(spent).toBe(budget);
    expect(hourly.findIndex((value) => value >= budget)).toBeLessThan(12);
  });

  it('does not hold back a campaign that is on or behind its curve, and restarts each day', () => {
    const controller = new PacingController('even');
    expect(controller.update(1_000, 0, 100)).toBe(1);
    expect(controller.update(3_600_000, 50, 100)).toBeLessThan(0.2); // half the budget in the first hour
    expect(controller.update(80_000_000, 90, 100)).toBe(1); // behind late in the day
    expect(controller.update(1_000, 0, 100)).toBe(1); // next morning
  });
});
