// First start: the model directory's catalog (catalog.json's shape: advertisers, campaigns, ads)
// becomes the store's first rows. The caller parses the file; the store reads no files.
import { StoreValidationError } from './errors';
import type { CatalogStore } from './store';

export interface SeedCatalog {
  advertisers: readonly unknown[];
  campaigns: readonly unknown[];
  ads: readonly unknown[];
}

export interface SeedResult {
  /** False when the store had already been seeded: nothing was written. */
  seeded: boolean;
  /** Rows inserted of each entity (rows an interrupted earlier seed had written are not counted again). */
  advertisers: number;
  campaigns: number;
  ads: number;
}

/**
 * Imports `catalog` into a store created since its last seed, in transactions of `batchSize`
 * rows, each row validated as a create; `catalogSha256` names the catalog for StoreSync. Safe to run again after an interruption, and from several
 * replicas at once: rows already present are skipped, and the store is marked seeded at the end.
 */
export async function seedFromCatalog(store: CatalogStore, catalog: SeedCatalog, options: { batchSize?: number; catalogSha256: string }): Promise<SeedResult> {
  const result: SeedResult = { seeded: false, advertisers: 0, campaigns: 0, ads: 0 };
  if (!(await store.seedPending())) return result;
  const batchSize = options.batchSize ?? 5000;
  const sections = [
    ['advertisers', 'advertiser'],
    ['campaigns', 'campaign'],
    ['ads', 'ad'],
  ] as const;
  for (const [section, entity] of sections) {
    const rows = catalog[section];
    for (let start = 0; start < rows.length; start += batchSize) {
      try {
        result[section] += await store.importBatch(entity, rows.slice(start, start + batchSize));
      } catch (error) {
        if (!(error instanceof StoreValidationError)) throw error;
        // importBatch names fields by their index in the batch: "[3].bid_micros".
        const [, index, rest] = /^\[(\d+)\]\.(.*)$/.exec(error.field) ?? [undefined, '0', error.field];
        throw new StoreValidationError(`${section}[${start + Number(index)}].${rest}`, error.reason);
      }
    }
  }
  await store.markSeeded({ catalogSha256: options.catalogSha256 });
  result.seeded = true;
  return result;
}
