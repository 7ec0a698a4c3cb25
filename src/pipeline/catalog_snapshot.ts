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

export const snapshotVersion = 1;
const fileName = 'catalog-snapshot.bin';

/** The file: [u32 header bytes][header JSON][column blocks][32-byte SHA-256 of everything before it]. */
function encode(header: SnapshotHeader, columns: AdColumns): Buffer[] {
  const raw = (array: Uint32Array | Float64Array | Uint8Array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);
  const headerBytes = Buffer.from(JSON.stringify({ ...header, ads: columns.length, dictionaries: columns.dictionaries }));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length);
  const blocks: Buffer[] = [length, headerBytes];
  for (const column of textColumns) {
    const { bytes, offsets } = columns.text[column].parts();
    const size = Buffer.alloc(4);
    size.writeUInt32LE(bytes.length);
    blocks.push(raw(offsets), size, bytes);
  }
  for (const column of codedColumns) blocks.push(raw(columns.codes[column]));
  for (const column of numberColumns) blocks.push(raw(columns.numbers[column]));
  blocks.push(raw(columns.status));
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
  let at = 4 + file.readUInt32LE(0);
  const header = JSON.parse(file.toString('utf8', 4, at)) as SnapshotHeader & { ads: number; dictionaries: AdColumns['dictionaries'] };
  if (header.version !== snapshotVersion) return undefined;
  const count = header.ads;
  // Copied out of the file's buffer into buffers of their own: typed arrays need aligned offsets.
  const take = (bytes: number): ArrayBuffer => {
    const part = new ArrayBuffer(bytes);
    new Uint8Array(part).set(body.subarray(at, at + bytes));
    at += bytes;
    return part;
  };
  const text = {} as AdColumns['text'];
  for (const column of textColumns) {
    const offsets = new Uint32Array(take(4 * (count + 1)));
    const size = new DataView(take(4)).getUint32(0, true);
    if (offsets[count] !== size) return undefined;
    text[column] = new PackedStrings(Buffer.from(take(size)), offsets);
  }
  const codes = {} as AdColumns['codes'];
  for (const column of codedColumns) codes[column] = new Uint32Array(take(4 * count));
  const numbers = {} as AdColumns['numbers'];
  for (const column of numberColumns) numbers[column] = new Float64Array(take(8 * count));
  const status = new Uint8Array(take(count));
  if (at !== body.length) return undefined;
  const { ads: _ads, dictionaries, ...rest } = header;
  return { header: rest, columns: new AdColumns(text, codes, dictionaries, numbers, status) };
}
