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

  constructor(
    private readonly bytes: Buffer,
    /** Row i spans bytes[offsets[i], offsets[i + 1]). */
    private readonly offsets: Uint32Array,
  ) {
    this.utf8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  /**
   * The lines of a file read whole (each ending in a newline), without a string for any of them;
   * throws on an empty line or a last line without its newline.
   */
  static fromLines(bytes: Buffer, what: string): PackedStrings {
    const newline = 0x0a;
    if (bytes.length > 0 && bytes[bytes.length - 1] !== newline) throw new Error(`${what} does not end with a newline`);
    let count = 0;
    for (let at = bytes.indexOf(newline); at !== -1; at = bytes.indexOf(newline, at + 1)) count++;
    // The same bytes without the newlines: line i, at [start, end) in the file, is at [start - i, end - i).
    const offsets = new Uint32Array(count + 1);
    const packed = Buffer.allocUnsafeSlow(bytes.length - count);
    let start = 0;
    for (let line = 0; line < count; line++) {
      const end = bytes.indexOf(newline, start);
      if (end === start) throw new Error(`${what} has an empty line ${line + 1}`);
      bytes.copy(packed, start - line, start, end);
      offsets[line + 1] = end - line;
      start = end + 1;
    }
    return new PackedStrings(packed, offsets);
  }

  get length(): number {
    return this.offsets.length - 1;
  }

  /** The column's bytes and row offsets, to write it to a file. */
  parts(): { bytes: Buffer; offsets: Uint32Array } {
    return { bytes: this.bytes, offsets: this.offsets };
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

/** Builds a packed column one row at a time (a catalog read from its store page by page). */
export class PackedStringsBuilder {
  private bytes = Buffer.allocUnsafeSlow(1 << 16);
  private offsets = new Uint32Array(1 << 10);
  private count = 0;

  /** Appends a row: a string, or UTF-8 bytes (another column's, copied). */
  push(value: string | Uint8Array): void {
    const at = this.offsets[this.count]!;
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const most = typeof value === 'string' ? value.length * 3 : value.length;
    if (at + most > this.bytes.length) {
      const next = Buffer.allocUnsafeSlow(Math.max(2 * this.bytes.length, at + most));
      this.bytes.copy(next, 0, 0, at);
      this.bytes = next;
    }
    if (this.count + 2 > this.offsets.length) {
      const next = new Uint32Array(2 * this.offsets.length);
      next.set(this.offsets);
      this.offsets = next;
    }
    if (typeof value === 'string') this.offsets[++this.count] = at + this.bytes.write(value, at, 'utf8');
    else {
      this.bytes.set(value, at);
      this.offsets[++this.count] = at + value.length;
    }
  }

  /** The column; its bytes are the builder's own buffer, whose unused tail was never written (so never touched). */
  finish(): PackedStrings {
    return new PackedStrings(this.bytes.subarray(0, this.offsets[this.count]!), this.offsets.subarray(0, this.count + 1));
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
