// Catalog text kept outside the JavaScript heap. A million-ad catalog holds millions of distinct
// strings (ids, titles, URLs); as heap objects every full garbage collection must visit them all,
// which stalled the ad path for tens of milliseconds at a time. Here each column is one Buffer of
// UTF-8 with an offset per row, and a string is made only when a row is read (the winners of an
// auction, an event's ad).

/** Read access to a column of catalog text. */
export interface StringColumn {
  readonly length: number;
  at(index: number): string | undefined;
  /** The row's UTF-8 bytes, a view valid as long as the column (no string is made). */
  utf8At(index: number): Uint8Array | undefined;
}

export class PackedStrings implements StringColumn {
  /** The same bytes as a plain Uint8Array, whose views are cheaper to make than a Buffer's. */
  private readonly utf8: Uint8Array;

  private constructor(
    private readonly bytes: Buffer,
    /** Row i spans bytes[offsets[i], offsets[i + 1]). */
    private readonly offsets: Uint32Array,
  ) {
    this.utf8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  static from(values: readonly string[]): PackedStrings {
    const offsets = new Uint32Array(values.length + 1);
    for (let i = 0; i < values.length; i++) offsets[i + 1] = offsets[i]! + Buffer.byteLength(values[i]!);
    const bytes = Buffer.allocUnsafeSlow(offsets[values.length]!);
    for (let i = 0; i < values.length; i++) bytes.write(values[i]!, offsets[i]!, 'utf8');
    return new PackedStrings(bytes, offsets);
  }

  get length(): number {
    return this.offsets.length - 1;
  }

  at(index: number): string | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) return undefined;
    return this.bytes.toString('utf8', this.offsets[index], this.offsets[index + 1]);
  }

  utf8At(index: number): Uint8Array | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) return undefined;
    return this.utf8.subarray(this.offsets[index], this.offsets[index + 1]);
  }
}

/** Row of each id in a packed column, as an open-addressing hash table of typed arrays. */
export class PackedIndex {
  private readonly slots: Int32Array;
  private readonly mask: number;

  /** Throws on a repeated id, naming it. */
  constructor(private readonly ids: PackedStrings) {
    let size = 1;
    while (size < ids.length * 2) size <<= 1;
    this.slots = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let row = 0; row < ids.length; row++) {
      const id = ids.at(row)!;
      let slot = fnv1a(id) & this.mask;
      while (this.slots[slot] !== -1) {
        if (ids.at(this.slots[slot]!) === id) throw new Error(`ad id ${id} appears twice in the catalog`);
        slot = (slot + 1) & this.mask;
      }
      this.slots[slot] = row;
    }
  }

  get(id: string): number | undefined {
    let slot = fnv1a(id) & this.mask;
    for (;;) {
      const row = this.slots[slot]!;
      if (row === -1) return undefined;
      if (this.ids.at(row) === id) return row;
      slot = (slot + 1) & this.mask;
    }
  }
}

/** FNV-1a over UTF-16 code units. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The same string object for equal values, so a column of few distinct values costs few heap objects. */
export function interned(values: readonly string[]): string[] {
  const canonical = new Map<string, string>();
  return values.map((value) => {
    const known = canonical.get(value);
    if (known !== undefined) return known;
    canonical.set(value, value);
    return value;
  });
}
