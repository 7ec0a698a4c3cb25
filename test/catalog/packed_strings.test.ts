import { describe, expect, it } from 'vitest';

import { PackedIndex, PackedStrings, PackedStringsBuilder } from '../../src/catalog/packed_strings';

function pack(values: readonly string[]): PackedStrings {
  const builder = new PackedStringsBuilder();
  for (const value of values) builder.push(value);
  return builder.finish();
}

describe('packed catalog strings', () => {
  const values = ['ad-1', '', 'Café ☕ Crème', 'ad-2', 'x'.repeat(1000), '日本語のタイトル'];

  it('reads back every row exactly, and nothing past the ends', () => {
    const packed = pack(values);
    expect(packed.length).toBe(values.length);
    expect(values.map((_, i) => packed.at(i))).toEqual(values);
    expect(packed.at(-1)).toBeUndefined();
    expect(packed.at(values.length)).toBeUndefined();
    expect(packed.at(1.5)).toBeUndefined();
  });

  it('finds the row of each id, misses unknown ids, and refuses a repeated id', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => `ad${String(i).padStart(8, '0')}`);
    const index = new PackedIndex(pack(ids));
    for (const i of [0, 1, 2499, 4999]) expect(index.get(ids[i]!)).toBe(i);
    expect(index.get('ad99999999')).toBeUndefined();
    expect(index.get('')).toBeUndefined();
    expect(() => new PackedIndex(pack(['a', 'b', 'a']))).toThrow(/ad id a appears twice/);
  });

  it('grows past its first buffers', () => {
    const many = Array.from({ length: 3000 }, (_, i) => values[i % values.length]!);
    const packed = pack(many);
    expect(packed.length).toBe(many.length);
    expect(many.map((_, i) => packed.at(i))).toEqual(many);
    expect(new PackedStringsBuilder().finish().length).toBe(0);
  });

  it('reads a file of lines without their newlines, and refuses an empty or unterminated line', () => {
    const lines = values.filter((value) => value !== '');
    const packed = PackedStrings.fromLines(Buffer.from(lines.map((line) => `${line}\n`).join('')), 'ids');
    expect(lines.map((_, i) => packed.at(i))).toEqual(lines);
    expect(packed.length).toBe(lines.length);
    expect(PackedStrings.fromLines(Buffer.alloc(0), 'ids').length).toBe(0);
    expect(() => PackedStrings.fromLines(Buffer.from('a\n\nb\n'), 'ids')).toThrow(/ids has an empty line 2/);
    expect(() => PackedStrings.fromLines(Buffer.from('a\nb'), 'ids')).toThrow(/ids does not end with a newline/);
  });
});
