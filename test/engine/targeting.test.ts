import { describe, expect, it } from 'vitest';

import type { TargetingCriterion } from '../../src/catalog/catalog_json';
import { addon } from '../../src/engine/addon';

// docs/targeting.md, "Worked examples": ads 0, 1 and 2 as listed there; ad 3 is untargeted and always matches.
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
      [
        { type: 'broad', value: 'athletic' },
        { type: 'geo', value: 'US' },
      ],
      [
        { type: 'broad', value: 'athletic' },
        { type: 'geo', value: 'CA' },
      ],
    ] as TargetingCriterion[][],
  },
  {
    ad: 2,
    rules: [
      [
        { type: 'exact', value: 'marathon training' },
        { type: 'geo', value: 'UK' },
      ],
      [{ type: 'audience', value: 'fitness_enthusiasts' }],
    ] as TargetingCriterion[][],
  },
];
const index = new addon.TargetingIndex(4, targeting);
const targeted = (fields: Parameters<typeof index.match>[0]): number[] => Array.from(index.match(fields)).filter((ad) => ad !== 3);

describe('Boolean targeting, the docs/targeting.md worked examples B1-B11', () => {
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
    expect(() => new addon.TargetingIndex(1, [{ ad: 0, rules }])).toThrow(/more than 20 targeting rules/);
    expect(() => new addon.TargetingIndex(1, [{ ad: 0, rules: [[{ type: 'zodiac' as 'geo', value: 'leo' }]] }])).toThrow(/unknown criterion type/);
    expect(() => new addon.TargetingIndex(1, [{ ad: 5, rules: [] }])).toThrow(/outside the catalog/);
  });
});

// A direct reading of the DNF semantics, to check the inverted index against on random catalogs.
const words = ['red', 'shoes', 'running', 'kids', 'used', 'trail'];
type Fields = { query: string; geo?: string; device?: string; audiences?: string[]; category?: string; product?: string; placement?: string };

function criterionMatches(criterion: TargetingCriterion, request: Fields): boolean {
  const query = request.query.split(' ').filter((w) => w !== '');
  const value = criterion.value.split(' ');
  const contiguous = (): boolean => query.some((_, start) => value.every((w, i) => query[start + i] === w));
  switch (criterion.type) {
    case 'exact':
      return query.length > 0 && query.join(' ') === value.join(' ');
    case 'phrase':
    case 'negative':
      return contiguous();
    case 'broad':
      return value.some((w) => query.includes(w));
    case 'geo':
      return request.geo?.toUpperCase() === criterion.value.toUpperCase();
    case 'device':
      return request.device?.toLowerCase() === criterion.value.toLowerCase();
    case 'category':
      return request.category?.toLowerCase() === criterion.value.toLowerCase();
    case 'placement':
      return request.placement?.toLowerCase() === criterion.value.toLowerCase();
    case 'audience':
      return request.audiences?.includes(criterion.value) ?? false;
    case 'product':
      return request.product === criterion.value;
  }
}

const referenceMatch = (rules: TargetingCriterion[][], request: Fields): boolean =>
  rules.length === 0 || rules.some((rule) => rule.every((criterion) => criterionMatches(criterion, request) !== (criterion.not ?? false)));

describe('Boolean targeting on random catalogs', () => {
  it('agrees with a direct evaluation of every rule, for every ad and request', () => {
    let seed = 7;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const phrase = (): string => Array.from({ length: 1 + Math.floor(random() * 2) }, () => pick(words)).join(' ');
    const criterion = (): TargetingCriterion => {
      const type = pick(['exact', 'phrase', 'broad', 'negative', 'geo', 'device', 'audience', 'category', 'product', 'placement'] as const);
      const value =
        {
          geo: pick(['US', 'ca', 'UK']),
          device: pick(['mobile', 'Desktop']),
          audience: pick(['a1', 'a2', 'a3']),
          category: pick(['shoes', 'Books']),
          product: pick(['p1', 'p2']),
          placement: pick(['search', 'Product_Page']),
        }[type as string] ?? phrase();
      return { type, value, ...(type === 'negative' || random() < 0.15 ? { not: true } : {}) };
    };
    let checked = 0;
    for (let catalog = 0; catalog < 20; catalog++) {
      const adCount = 80;
      const targeting = Array.from({ length: adCount }, (_, ad) => ({
        ad,
        // Each criterion once per rule: the index counts a repeated criterion once.
        rules: Array.from({ length: Math.floor(random() * 4) }, () => {
          const rule = Array.from({ length: 1 + Math.floor(random() * 3) }, criterion);
          return rule.filter((c, i) => rule.findIndex((other) => other.type === c.type && other.value.toLowerCase() === c.value.toLowerCase()) === i);
        }),
      }));
      const built = new addon.TargetingIndex(adCount, targeting);
      for (let r = 0; r < 100; r++) {
        const request: Fields = { query: Array.from({ length: Math.floor(random() * 4) }, () => pick(words)).join(' ') };
        if (random() < 0.7) request.geo = pick(['us', 'CA', 'UK', 'FR']);
        if (random() < 0.7) request.device = pick(['MOBILE', 'desktop']);
        if (random() < 0.5) request.audiences = [pick(['a1', 'a2', 'a3']), pick(['a1', 'a4'])];
        if (random() < 0.5) request.category = pick(['SHOES', 'books', 'toys']);
        if (random() < 0.5) request.product = pick(['p1', 'p2', 'p3']);
        if (random() < 0.5) request.placement = pick(['search', 'product_page', 'cart']);
        const expected = targeting.filter((t) => referenceMatch(t.rules, request)).map((t) => t.ad);
        expect(Array.from(built.match(request)), JSON.stringify(request)).toEqual(expected);
        checked++;
      }
    }
    expect(checked).toBe(2000);
  });
});

describe('placement and device criteria', () => {
  // The request side spells them from the FlatBuffers enums; a criterion spelled any other way would never match.
  it('name one of the placements or device types the requests can carry, or the catalog is refused', () => {
    const index = (type: 'placement' | 'device', value: string) => () => new addon.TargetingIndex(1, [{ ad: 0, rules: [[{ type, value }]] }]);
    expect(index('placement', 'Product_Page')).not.toThrow();
    expect(index('placement', 'productpage')).toThrow("placement criterion 'productpage' is not one of search, product_page, category, homepage, cart");
    expect(index('device', 'phone')).toThrow("device criterion 'phone' is not one of desktop, mobile, tablet, app");
    expect(index('device', 'Tablet')).not.toThrow();
  });
});
