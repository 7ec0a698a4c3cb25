import { execFileSync } from 'node:child_process';

import { expect, it } from 'vitest';

import { addon } from '../../src/engine/addon';
import { featureOptions } from '../../src/engine/engine';
import { readModelDir } from '../../src/engine/model_dir';
import { type AdRequestSpec, encodeAdRequest } from '../../src/protocol/encode_request';
import { projectRoot } from '../../src/paths';
import { tinyModelDir } from '../setup/tiny_model';

// Requests covering the featuriser's edge cases: case, punctuation, non-ASCII bytes, empty and
// over-long queries, unknown vocabulary, language subtags, negative UTC offsets, enum values the
// model never saw.
function randomRequests(count: number): AdRequestSpec[] {
  let seed = 99;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const queries = [
    'Running Shoes',
    'usb-c CABLE 2m',
    'café crème',
    '',
    '   ',
    'a b c d e f g h i j k l',
    '4K TV!!!',
    'Ünïcödé façade',
    'dog_food&treats',
    '日本語 query',
  ];
  return Array.from({ length: count }, (_, i) => ({
    id: `p-${i}`,
    placement: pick([1, 2, 3, 4, 5]),
    query: pick(queries),
    yob: pick([0, 1950, 1980, 1999, 2010, 3000]),
    gender: pick([0, 1, 2, 3]),
    country: pick(['US', 'de', 'Fr', 'XX', '']),
    deviceType: pick([0, 1, 2, 3, 4]),
    language: pick(['en-US', 'de_AT', 'FR', 'ja', 'xx', '']),
    categoryId: pick(['shoes', 'pets', 'unknown-category', '']),
    productId: pick(['p00000001', 'p00000042', 'sku-ü', '']),
    timestampMs: BigInt(Math.floor(1.7e12 + random() * 1e10)),
    utcOffsetMinutes: pick([0, 60, -300, 330, -720]),
    page: Math.floor(random() * 30),
  }));
}

it('featurises requests exactly like train/ does', () => {
  const model = readModelDir(tinyModelDir);
  const features = featureOptions(model);
  const specs = randomRequests(300);
  const native = specs.map((spec) => addon.featurize(encodeAdRequest(spec), features));
  const input = specs
    .map((spec) =>
      JSON.stringify({
        placement: spec.placement,
        query: spec.query,
        yob: spec.yob,
        gender: spec.gender,
        country: spec.country,
        device: spec.deviceType,
        language: spec.language,
        category_id: spec.categoryId,
        product_id: spec.productId,
        timestamp_ms: Number(spec.timestampMs),
        utc_offset_minutes: spec.utcOffsetMinutes,
        page: spec.page,
      }),
    )
    .join('\n');
  const output = execFileSync('/usr/bin/python3', ['-m', 'train.request_features', tinyModelDir], { cwd: projectRoot, input, encoding: 'utf8' });
  const reference = output
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(reference.length).toBe(specs.length);
  native.forEach((got, i) => {
    const want = reference[i]!;
    expect(got.userCategorical).toEqual(want.userCategorical);
    expect(got.contextCategorical).toEqual(want.contextCategorical);
    expect(got.logPage).toBeCloseTo(want.logPage as number, 6);
    expect(got.search).toBe(want.search);
    if (got.search) expect(got.queryTokens).toEqual(want.queryTokens);
    else expect([got.pageCategory, got.pageProduct]).toEqual([want.pageCategory, want.pageProduct]);
  });
  // The sample reaches the interesting branches.
  expect(native.some((f) => f.search && f.queryTokens![0] === 1)).toBe(true);
  expect(native.some((f) => !f.search && f.pageCategory! > 0)).toBe(true);
  expect(native.some((f) => f.userCategorical[3]! > 0)).toBe(true);
});
