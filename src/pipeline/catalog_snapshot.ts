// A replica's copy of the catalog store as of one change seq, in its dataDir: the advertisers and
// campaigns as JSON, the ads as packed columns in id order. Reading a million ads row by row from
// the store costs tens of seconds on this box (better-sqlite3 makes every value a JavaScript value,
// about 10 µs a row); the snapshot reads in well under a second, and the changes committed since
// its seq are read from the store on top of it. It is a cache: any doubt (another store, an older
// copy of this one, a damaged file) and the daemon reads the store whole and writes a new one.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { AdColumns, codedColumns, numberColumns, textColumns } from '../catalog/ad_columns';
import { PackedStrings } from '../catalog/packed_strings';
import { replaceDurably } from '../durable_file';
import type { AdvertiserRow, CampaignRow } from '../store/types';

export interface SnapshotHeader {
  version: number;
  storeId: string;
  /** Every change up to this seq is in the rows (and perhaps some after it). */
  seq: number;
  /** The change at `seq`, to tell this store from a restored older copy that has since reached the same seq. */
  change: { entity: string; id: string; version: number } | undefined;
  advertisers: AdvertiserRow[];
  campaigns: CampaignRow[];
}

export const snapshotVersion = 2;
const fileName = 'catalog-snapshot.bin';

/**
 * The file: [u32 header bytes][header JSON][column blocks][32-byte SHA-256 of everything before it],
 * each block starting at a multiple of 8 bytes, so that the reader's typed arrays are views of the
 * file's bytes rather than copies.
 */
function encode(header: SnapshotHeader, columns: AdColumns): Buffer[] {
  const raw = (array: Uint32Array | Float64Array | Uint8Array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);
  const blocks: Buffer[] = [];
  let length = 0;
  const push = (block: Buffer) => {
    const padding = (8 - (length % 8)) % 8;
    if (padding > 0) blocks.push(Buffer.alloc(padding));
    blocks.push(block);
    length += padding + block.length;
  };
  const headerBytes = Buffer.from(JSON.stringify({ ...header, ads: columns.length, dictionaries: columns.dictionaries }));
  const headerLength = Buffer.alloc(4);
  headerLength.writeUInt32LE(headerBytes.length);
  push(headerLength);
  push(headerBytes);
  for (const column of textColumns) {
    const { bytes, offsets } = columns.text[column].parts();
    push(raw(offsets));
    push(bytes);
  }
  for (const column of codedColumns) push(raw(columns.codes[column]));
  for (const column of numberColumns) push(raw(columns.numbers[column]));
  push(raw(columns.status));
  const hash = createHash('sha256');
  for (const block of blocks) hash.update(block);
  blocks.push(hash.digest());
  return blocks;
}

/** Writes the snapshot, replacing the last one whole (never a torn file), without blocking the event loop on disk. */
export async function writeSnapshot(dataDir: string, header: SnapshotHeader, columns: AdColumns): Promise<void> {
  const blocks = encode(header, columns);
  await replaceDurably(dataDir, fileName, async (file) => {
    for (const block of blocks) await file.write(block);
  });
}

/** The snapshot in dataDir, or undefined when there is none or it is damaged. */
export function readSnapshot(dataDir: string): { header: SnapshotHeader; columns: AdColumns } | undefined {
  let file: Buffer;
  try {
    file = readFileSync(path.join(dataDir, fileName));
  } catch {
    return undefined;
  }
  if (file.length < 36) return undefined;
  const body = file.subarray(0, file.length - 32);
  if (
    !createHash('sha256')
      .update(body)
      .digest()
      .equals(file.subarray(file.length - 32))
  )
    return undefined;
  // Views need the bytes to start at a multiple of 8: a file read into a buffer of its own does (a
  // small one may sit in Node's shared pool, and is copied into a buffer of its own).
  const bytes = file.byteOffset % 8 === 0 ? body : Buffer.alloc(body.length, body);
  // The header JSON, after its length and the padding to 8 bytes.
  const headerEnd = 8 + bytes.readUInt32LE(0);
  if (headerEnd > bytes.length) return undefined;
  let header: SnapshotHeader & { ads: number; dictionaries: AdColumns['dictionaries'] };
  try {
    header = JSON.parse(bytes.toString('utf8', 8, headerEnd)) as typeof header;
  } catch {
    return undefined;
  }
  if (header.version !== snapshotVersion || !Number.isInteger(header.ads) || header.ads < 0) return undefined;
  const { ads, dictionaries, ...rest } = header;
  const columns = readColumns(bytes, headerEnd, ads, dictionaries);
  return columns && { header: rest, columns };
}

/** The column blocks from `at` on, as views of `bytes`; undefined unless they fill the rest exactly. */
function readColumns(bytes: Buffer, at: number, count: number, dictionaries: AdColumns['dictionaries']): AdColumns | undefined {
  const take = <T>(bytesPerElement: number, elements: number, view: (buffer: ArrayBufferLike, offset: number, length: number) => T): T | undefined => {
    at += (8 - (at % 8)) % 8;
    if (at + bytesPerElement * elements > bytes.length) return undefined;
    const taken = view(bytes.buffer, bytes.byteOffset + at, elements);
    at += bytesPerElement * elements;
    return taken;
  };
  const u32 = (elements: number) => take(4, elements, (buffer, offset, length) => new Uint32Array(buffer, offset, length));
  const text = {} as AdColumns['text'];
  for (const column of textColumns) {
    const offsets = u32(count + 1);
    const utf8 = offsets && take(1, offsets[count]!, (buffer, offset, length) => Buffer.from(buffer, offset, length));
    if (!offsets || !utf8) return undefined;
    text[column] = new PackedStrings(utf8, offsets);
  }
  const codes = {} as AdColumns['codes'];
  for (const column of codedColumns) {
    const values = u32(count);
    if (!values) return undefined;
    codes[column] = values;
  }
  const numbers = {} as AdColumns['numbers'];
  for (const column of numberColumns) {
    const values = take(8, count, (buffer, offset, length) => new Float64Array(buffer, offset, length));
    if (!values) return undefined;
    numbers[column] = values;
  }
  const status = take(1, count, (buffer, offset, length) => new Uint8Array(buffer, offset, length));
  if (!status || at !== bytes.length) return undefined;
  return new AdColumns(text, codes, dictionaries, numbers, status);
}
