// With hugePages on, tables from 2 MiB up are mapped on their own and advised for transparent huge
// pages (native/engine/huge_pages.*). The tiny model's tables are all smaller, so this copies it with its
// user tables repeated until user_category.f32 passes 2 MiB: every copy of a user must then score
// exactly as the user does, and the table's mapping must be eligible for huge pages where the
// kernel's THP mode allows them.
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { defaults } from '../../src/config';
import { addon, type NativeEngine } from '../../src/engine/addon';
import { adHistory, type EngineSettings, openEngine } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { tinyModelDir } from '../setup/tiny_model';

const hugePage = 2 << 20;
const settings: EngineSettings = {
  index: { kind: 'flat' },
  fusion: 'precomputed',
  annCandidates: 100,
  scoreCandidates: 20,
  batching: { maxBatch: 8, maxDelayUs: 1000, queueCapacity: 64 },
  light: lightWeights(defaults),
};

let dir: string;
let engine: NativeEngine;
let copies: number;
let categoryBytes: number;

/** Writes the tiny model's user tables repeated `times` times (ids of the repeats suffixed), with the manifest updated. */
function repeatUsers(times: number): void {
  const manifestPath = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: Record<string, { shape?: number[]; sha256: string }> };
  const write = (name: string, bytes: Buffer, shape?: number[]): void => {
    writeFileSync(path.join(dir, name), bytes);
    manifest.files[name] = { ...manifest.files[name]!, ...(shape ? { shape } : {}), sha256: createHash('sha256').update(bytes).digest('hex') };
  };
  const read = (name: string): Buffer => readFileSync(path.join(dir, name));
  const repeated = (name: string): void => {
    const shape = manifest.files[name]!.shape!;
    write(name, Buffer.concat(Array.from({ length: times }, () => read(name))), [shape[0]! * times, ...shape.slice(1)]);
  };
  for (const name of ['user_embeddings.f32', 'user_category.f32', 'user_advertiser_index.i32', 'user_advertiser_values.f32']) repeated(name);
  const indptr = new Int32Array(new Uint8Array(read('user_advertiser_indptr.i32')).buffer);
  const users = indptr.length - 1;
  const entries = indptr[users]!;
  const grown = new Int32Array(users * times + 1);
  for (let r = 0; r < times; r++) for (let u = 0; u < users; u++) grown[r * users + u] = indptr[u]! + r * entries;
  grown[users * times] = entries * times;
  write('user_advertiser_indptr.i32', Buffer.from(grown.buffer), [grown.length]);
  const ids = (JSON.parse(read('users.json').toString('utf8')) as { ids: string[] }).ids;
  const allIds = Array.from({ length: times }, (_, r) => ids.map((id) => (r === 0 ? id : `${id}-copy${r}`))).flat();
  write('users.json', Buffer.from(JSON.stringify({ ids: allIds })));
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
}

beforeAll(async () => {
  addon.configure({ hugePages: true });
  dir = mkdtempSync(path.join(tmpdir(), 'adserve-huge-'));
  cpSync(tinyModelDir, dir, { recursive: true });
  const perUser = readFileSync(path.join(dir, 'user_category.f32')).length / readModelDir(dir).userIds.length;
  copies = Math.ceil((hugePage + 1) / (perUser * readModelDir(dir).userIds.length));
  repeatUsers(copies);
  const model = readModelDir(dir);
  categoryBytes = readFileSync(path.join(dir, 'user_category.f32')).length;
  expect(categoryBytes).toBeGreaterThan(hugePage);
  engine = await openEngine(model, catalogFromFile(model), adHistory(model), settings);
});

afterAll(() => {
  engine?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('scores every copy of a user exactly as the user, from tables mapped for huge pages', async () => {
  const model = readModelDir(dir);
  const users = model.userIds.length / copies;
  for (const user of [0, 7, users - 1]) {
    const original = await engine.score(encodeAdRequest({ query: 'running shoes', userId: model.userIds[user] }), 5000);
    const copy = await engine.score(encodeAdRequest({ query: 'running shoes', userId: model.userIds[(copies - 1) * users + user] }), 5000);
    expect(Array.from(copy.adIndex)).toEqual(Array.from(original.adIndex));
    expect(Array.from(copy.ctrLogit)).toEqual(Array.from(original.ctrLogit));
  }
  // The table's own mapping: its length rounded up to whole huge pages.
  const mappingBytes = Math.ceil(categoryBytes / hugePage) * hugePage;
  const smaps = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const mapping = smaps.find((entry) => {
    const [start, end] = entry
      .split(' ')[0]!
      .split('-')
      .map((hex) => BigInt(`0x${hex}`));
    return end! - start! === BigInt(mappingBytes) && start! % BigInt(hugePage) === 0n;
  });
  expect(mapping).toBeDefined();
  const mode = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];
  if (mode !== 'never') expect(mapping).toMatch(/THPeligible:\s+1/);
});
