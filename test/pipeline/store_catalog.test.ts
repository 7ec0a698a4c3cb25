// A model's catalog read from the store, whole or from a replica's snapshot plus the changes since
// it: both must give the same catalog, on both backends; a snapshot that is not this store's, or
// is damaged, is not used.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, test } from 'vitest';

import { catalogFileLines } from '../../src/catalog/catalog_file';
import { defaults } from '../../src/config';
import { readModelDir } from '../../src/engine/model_dir';
import { readSnapshot } from '../../src/pipeline/catalog_snapshot';
import { readStoreCatalog, type StoreCatalog } from '../../src/pipeline/store_catalog';
import { seedFromCatalog } from '../../src/store/seed';
import type { CatalogStore } from '../../src/store/store';
import { ad, advertiser, backends, campaign, useStores } from '../helpers/catalog_store';
import { tinyModelDir } from '../setup/tiny_model';

const stores = useStores();
const model = readModelDir(tinyModelDir);
const options = { blockedPolicyFlags: [], limits: defaults };

/** What a read gives serving, comparable across reads. */
function served({ serving, read }: StoreCatalog) {
  const { catalog } = serving;
  return {
    size: catalog.size,
    rows: Array.from({ length: catalog.size }, (_, i) => [
      catalog.adId.at(i),
      catalog.campaignId[i],
      catalog.title.at(i),
      catalog.active[i],
      catalog.adRetired[i],
    ]),
    campaigns: [...catalog.campaigns.values()],
    targeting: serving.targeting,
    toEmbed: read.toEmbed.map((row) => row.id).sort(),
    advertisers: read.advertisers.map((row) => [row.id, row.status]),
  };
}

async function seeded(backend: (typeof backends)[number]): Promise<CatalogStore> {
  const store = await stores.open(backend);
  await seedFromCatalog(store, catalogFileLines(model.seedCatalog!.file), { catalogSha256: model.seedCatalog!.sha256 });
  return store;
}

describe.each(backends)('the catalog read from a %s store', (backend) => {
  test('from a snapshot and the changes since it is the catalog read whole', async () => {
    const store = await seeded(backend);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-snapshot-'));
    const first = await readStoreCatalog(store, model, options, dataDir);
    expect(first.writeSnapshot).toBeDefined();
    await first.writeSnapshot!();
    expect(readSnapshot(dataDir)?.columns.length).toBe(model.adIds.length);
    // A model row the store has whole: the store's ads are the model's.
    expect(served(first)).toEqual(served(await readStoreCatalog(store, model, options)));
    expect(first.read.toEmbed).toEqual([]);

    // Changes of every kind after the snapshot.
    const [a0, a1, a2] = [model.adIds.at(0)!, model.adIds.at(1)!, model.adIds.at(2)!];
    await store.createAdvertiser(advertiser('adv-new'));
    await store.createCampaign({ ...campaign('c-new', 'adv-new'), flight_start: null, flight_end: null });
    await store.createAd(ad('aaa-first', 'c-new'));
    await store.createAd(ad('zzz-last', 'c-new'));
    await store.update('ad', a0, { title: 'A new title' });
    await store.update('ad', a1, { status: 'paused' });
    await store.archive('ad', a2);
    const fromSnapshot = await readStoreCatalog(store, model, options, dataDir);
    const whole = await readStoreCatalog(store, model, options);
    expect(served(fromSnapshot)).toEqual(served(whole));
    // Few changes: the snapshot is still good enough to keep.
    expect(fromSnapshot.writeSnapshot).toBeUndefined();
    const { catalog } = fromSnapshot.serving;
    expect(catalog.title.at(catalog.indexOf.get(a0)!)).toBe('A new title');
    expect(catalog.adPaused[catalog.indexOf.get(a1)!]).toBe(1);
    expect(catalog.adRetired[catalog.indexOf.get(a2)!]).toBe(1);
    // New ads have no model row: they are left to be embedded, like a retitled one.
    expect(fromSnapshot.read.toEmbed.map((row) => row.id).sort()).toEqual(['aaa-first', 'zzz-last']);
    expect(catalog.indexOf.get('aaa-first')).toBeUndefined();
  });

  test('a snapshot of another store, of a later seq, or damaged is read around', async () => {
    const store = await seeded(backend);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-snapshot-'));
    await (
      await readStoreCatalog(store, model, options, dataDir)
    ).writeSnapshot!();
    const file = path.join(dataDir, 'catalog-snapshot.bin');
    const good = readFileSync(file);

    // Another store seeded alike, then changed: this store's snapshot must not stand in for it.
    const other = await seeded(backend);
    await other.archive('ad', model.adIds.at(0)!);
    const otherRead = await readStoreCatalog(other, model, options, dataDir);
    expect(otherRead.writeSnapshot).toBeDefined();
    expect(otherRead.serving.catalog.adRetired[0]).toBe(1);

    // Damaged under a matching hash too (written by a broken writer): a header that is not JSON, blocks cut short.
    const hashed = (body: Buffer) => Buffer.concat([body, createHash('sha256').update(body).digest()]);
    const notJson = Buffer.alloc(24);
    notJson.writeUInt32LE(16);
    const cutShort = good.subarray(0, good.length - 32 - 8);
    for (const damaged of [
      Buffer.concat([good.subarray(0, 1000), Buffer.from('x'), good.subarray(1001)]),
      good.subarray(0, good.length - 1),
      hashed(notJson),
      hashed(cutShort),
    ]) {
      writeFileSync(file, damaged);
      expect(readSnapshot(dataDir)).toBeUndefined();
      const read = await readStoreCatalog(store, model, options, dataDir);
      expect(read.writeSnapshot).toBeDefined();
      expect(served(read)).toEqual(served(await readStoreCatalog(store, model, options)));
    }
  });
});
