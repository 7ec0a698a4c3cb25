import { execFileSync } from 'node:child_process';
import { arch } from 'node:os';

import { expect, it } from 'vitest';

import { addonPath } from '../../src/paths';

// The engine's random reads of large tables (targeting rules, exclusion keys, the fusion's rows,
// the re-rank's vectors) are overlapped by prefetches issued ahead of use. A compiler may delete
// them without a word (GCC 12 did, native/engine/prefetch.h): the answers stay the same and only
// the CPU per request grows, so this reads the built addon's machine code for them.
const symbols = execFileSync('nm', [addonPath], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  .split('\n')
  .map((line) => line.split(' ')[2] ?? '');

/** Prefetch instructions in the addon's one function whose mangled name matches `pattern`. */
function prefetchesIn(pattern: RegExp): number {
  const matching = symbols.filter((name) => pattern.test(name));
  expect(matching).toHaveLength(1);
  const symbol = matching[0]!;
  const listing = execFileSync('objdump', ['-d', '--no-show-raw-insn', `--disassemble=${symbol}`, addonPath], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return (listing.match(/\tprefetcht0\s/g) ?? []).length;
}

it.skipIf(arch() !== 'x64')('keeps the prefetches of the targeting and exclusion checks, the fusion gather and the IVF scan', () => {
  // CatalogFilter::admitEach: a rule start, then the rules, and four exclusion key columns.
  expect(prefetchesIn(/^_ZNK7adserve13CatalogFilter9admitEach/)).toBeGreaterThanOrEqual(6);
  // The fusion's parallel block: first lines of the projection and embedding rows, the ad's
  // category and advertiser, then the rest of both rows a few candidates ahead.
  expect(prefetchesIn(/^_ZNK7adserve6Fusion16scorePrecomputed.*\._omp_fn\.0$/)).toBeGreaterThanOrEqual(6);
  // The IVF scan's parallel part: the passing candidates' ids, then the re-ranked rows.
  expect(prefetchesIn(/^_ZNK7adserve8AnnIndex11scanIvfFlat.*\._omp_fn\.0$/)).toBeGreaterThanOrEqual(3);
});
