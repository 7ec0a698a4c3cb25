// Columns of a catalog that grows while serving: ads created through the catalog store are appended
// after the ones loaded with the model, under the indices the engine gives them.
import type { StringColumn } from './packed_strings';

/**
 * A column that grows while serving: the packed rows loaded with the catalog, then rows appended
 * since (ads created through the catalog store), which are few beside them and stay ordinary strings.
 */
export class GrowingStrings implements StringColumn {
  private readonly appended: string[] = [];
  private readonly appendedUtf8: Uint8Array[] = [];

  constructor(private readonly base: StringColumn) {}

  get length(): number {
    return this.base.length + this.appended.length;
  }

  push(value: string): void {
    this.appended.push(value);
    this.appendedUtf8.push(Buffer.from(value, 'utf8'));
  }

  /** Drops appended rows from `length` on (never loaded ones). */
  truncate(length: number): void {
    const keep = Math.max(0, length - this.base.length);
    this.appended.length = keep;
    this.appendedUtf8.length = keep;
  }

  at(index: number): string | undefined {
    return index < this.base.length ? this.base.at(index) : this.appended[index - this.base.length];
  }

  utf8At(index: number): Uint8Array | undefined {
    return index < this.base.length ? this.base.utf8At(index) : this.appendedUtf8[index - this.base.length];
  }
}

/** The row of each ad id: the loaded catalog's index, overridden by rows appended since (a re-embedded ad's newest row wins). */
export class GrowingIndex {
  private readonly appended = new Map<string, number>();

  constructor(private readonly base: { get(id: string): number | undefined }) {}

  get(id: string): number | undefined {
    return this.appended.get(id) ?? this.base.get(id);
  }

  set(id: string, row: number): void {
    this.appended.set(id, row);
  }

  /** Points `id` back at an earlier row, or at the loaded catalog's when `row` is undefined. */
  restore(id: string, row: number | undefined): void {
    if (row === undefined || row === this.base.get(id)) this.appended.delete(id);
    else this.appended.set(id, row);
  }
}

/** A typed array's first `length` elements over a buffer grown by doubling, so appending one row at a time costs amortised O(1). */
export function grownTo<T extends Uint8Array | Uint32Array | Float32Array | Float64Array>(array: T, length: number): T {
  const capacity = array.buffer.byteLength / array.BYTES_PER_ELEMENT;
  // A view of the whole buffer: subarray() of a shorter view would clamp to that view's length.
  if (length <= capacity && array.byteOffset === 0)
    return new (array.constructor as new (buffer: ArrayBufferLike, offset: number, length: number) => T)(array.buffer, 0, length);
  const next = new (array.constructor as new (size: number) => T)(Math.max(length, 2 * capacity, 16));
  next.set(array);
  return next.subarray(0, length) as T;
}
