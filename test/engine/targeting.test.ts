import { describe, expect, it } from 'vitest';

import { addon, type TargetingCriterion } from '../../src/engine/addon';

// BOOK_SPEC 2.7: Ad_123 (index 0), Ad_456 (1), Ad_789 (2); ad 3 is untargeted and always matches.
const not = (criterion: TargetingCriterion): TargetingCriterion => ({ ...criterion, not: true });
const used = not({ type: 'negative', value: 'used' });
const targeting = [
  {
    ad: 0,
    rules: [
      [{ type: 'exact', value: 'nike shoes' }, { type: 'geo', value: 'US' }, { type: 'device', value: 'mobile' }, used],
      [{ type: 'phrase', value: 'running shoes' }, { type: 'geo', value: 'US' }, { type: 'device', value: 'mobile' }, used],
    ] as TargetingCriterion[][],
  },
  {
    ad: 1,
    rules: [
      [{ type: 'broad', value: 'athletic' }, { type: 'geo', value: 'US' }],
      [{ type: 'broad', value: 'athletic' }, { type: 'geo', value: 'CA' }],
    ] as TargetingCriterion[][],
  },
  {
    ad: 2,
    rules: [[{ type: 'exact', value: 'marathon training' }, { type: 'geo', value: 'UK' }], [{ type: 'audience', value: 'fitness_enthusiasts' }]] as TargetingCriterion[][],
  },
];
const index = new addon.TargetingIndex(4, targeting);
const targeted = (fields: Parameters<typeof index.match>[0]): number[] => Array.from(index.match(fields)).filter((ad) => ad !== 3);

describe('Boolean targeting, BOOK_SPEC test vectors B1-B11', () => {
  it.each([
    ['B1', { query: 'best nike running shoes', geo: 'US', device: 'mobile' }, [0]],
    ['B2', { query: 'best nike running shoes', geo: 'US', device: 'mobile', audiences: ['fitness_enthusiasts', 'high_value_customers'] }, [0, 2]],
    ['B3', { query: 'used nike running shoes', geo: 'US', device: 'mobile' }, []],
    ['B4', { query: 'nike shoes', geo: 'US', device: 'mobile' }, [0]],
    ['B5', { query: 'nike shoes', geo: 'US', device: 'desktop' }, []],
    ['B6', { query: 'shoes running', geo: 'US', device: 'mobile' }, []],
    ['B7', { query: 'running shoes for kids', geo: 'US', device: 'mobile' }, [0]],
    ['B8', { query: 'athletic socks', geo: 'CA', device: 'mobile' }, [1]],
    ['B9', { query: 'athletic socks', geo: 'UK', device: 'mobile' }, []],
    ['B10', { query: 'marathon training', geo: 'UK', device: 'desktop' }, [2]],
    ['B11', { query: 'marathon training', geo: 'US', device: 'mobile' }, []],
  ])('%s', (_id, request, expected) => {
    expect(targeted(request)).toEqual(expected);
  });

  it('normalises case and punctuation the same way on both sides, and keeps untargeted ads', () => {
    expect(Array.from(index.match({ query: 'Nike-SHOES!', geo: 'us', device: 'Mobile' }))).toEqual([0, 3]);
    expect(Array.from(index.match({}))).toEqual([3]);
  });

  it('evaluates rules with only negated criteria (run of site, except ...)', () => {
    const runOfSite = new addon.TargetingIndex(2, [{ ad: 0, rules: [[not({ type: 'negative', value: 'free' })]] }]);
    expect(Array.from(runOfSite.match({ query: 'cheap shoes' }))).toEqual([0, 1]);
    expect(Array.from(runOfSite.match({ query: 'free shoes' }))).toEqual([1]);
  });

  it('refuses more than 20 rules per ad and unknown criterion types', () => {
    const rules = Array.from({ length: 21 }, (_, i) => [{ type: 'geo' as const, value: `G${i}` }]);
    expect(() => new addon.TargetingIndex(1, [{ ad: 0, rules }])).toThrow(/at most 20/);
    expect(() => new addon.TargetingIndex(1, [{ ad: 0, rules: [[{ type: 'zodiac' as 'geo', value: 'leo' }]] }])).toThrow(/unknown criterion type/);
    expect(() => new addon.TargetingIndex(1, [{ ad: 5, rules: [] }])).toThrow(/outside the catalog/);
  });
});
