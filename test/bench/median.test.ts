import { expect, it } from 'vitest';

import { median } from '../../bench/report';

it('takes the middle value, and the mean of the two middle ones for an even count', () => {
  expect(median([3, 1, 2])).toBe(2);
  // Two rounds: their mean, not the larger (each column of a report is its own median, so taking
  // the larger would pair one round's rate with the other round's CPU).
  expect(median([1188, 1681])).toBe(1434.5);
  expect(median([4, 1, 3, 2])).toBe(2.5);
  expect(median([7])).toBe(7);
});
