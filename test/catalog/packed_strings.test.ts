import { describe, expect, it } from 'vitest';

import { interned, PackedIndex, PackedStrings } from '../../src/catalog/packed_strings';

describe('packed catalog strings', () => {
  const values = ['ad-1', '', 'Café ☕ Crème', 'ad-2', 'x'.repeat(1000), '日本語のタイトル'];

  it('reads back every row exactly, and nothing past the ends', () => {
    const packed = PackedStrings.from(values);
    expect(packed.length).toBe(values.length);
    expect(values.map((_, i) => packed.at(i))).toEqual(values);
    expect(packed.at(-1)).toBeUndefined();
    expect(packed.at(values.length)).toBeUndefined();
    expect(packed.at(1.5)).toBeUndefined();
  });

  it('finds the row of each id, misses unknown ids, and refuses a repeated id', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => `ad${String(i).padStart(8, '0')}`);
    const index = new PackedIndex(PackedStrings.from(ids));
    for (const i of [0, 1, 2499, 4999]) expect(index.get(ids[i]!)).toBe(i);
    expect(index.get('ad99999999')).toBeUndefined();
    expect(index.get('')).toBeUndefined();
    expect(() => new PackedIndex(PackedStrings.from(['a', 'b', 'a']))).toThrow(/ad id a appears twice/);
  });

  it('interns equal values into one string each', () => {
    const column = interned(JSON.parse('["c1","c2","c1","c1"]') as string[]);
    expect(column).toEqual(['c1', 'c2', 'c1', 'c1']);
    expect(new Set(column).size).toBe(2);
  });
});
