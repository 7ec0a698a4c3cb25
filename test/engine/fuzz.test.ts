import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { expect, it } from 'vitest';

import { projectRoot } from '../../src/paths';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { DeviceType, Placement } from '../../src/protocol/schema';

// A bounded libFuzzer run (ASan + UBSan) over verification, featurisation and targeting, seeded with
// well-formed requests so mutations reach past the verifier.
it('survives a bounded fuzzing run of the request parsing path', () => {
  const corpus = mkdtempSync(path.join(tmpdir(), 'adserve-fuzz-'));
  const seeds = [
    encodeAdRequest({ query: 'best nike running shoes', country: 'US', deviceType: DeviceType.Mobile, yob: 1990, language: 'en-US' }),
    encodeAdRequest({ placement: Placement.Category, categoryId: 'shoes', productId: 'p1', timestampMs: 1_700_000_000_000n, utcOffsetMinutes: -300 }),
    encodeAdRequest({ placement: Placement.Cart, userId: 'u1', page: 3, slots: 4, floorCpmMicros: 5n }),
  ];
  seeds.forEach((seed, i) => writeFileSync(path.join(corpus, `seed-${i}`), seed));
  const run = spawnSync(path.join(projectRoot, 'build', 'fuzz', 'request_fuzzer'), ['-max_total_time=15', '-seed=1', '-rss_limit_mb=2048', corpus], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const output = `${run.stdout}${run.stderr}`;
  expect(output).not.toMatch(/ERROR: (AddressSanitizer|libFuzzer)|runtime error/);
  expect(run.status).toBe(0);
  expect(Number(/stat::number_of_executed_units: (\d+)/.exec(output)?.[1] ?? /#(\d+)\s+DONE/.exec(output)?.[1] ?? 0)).toBeGreaterThan(1000);
}, 90_000);
