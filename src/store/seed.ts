// First start: the model directory's catalog.jsonl becomes the store's first rows. The caller
// opens the file; the store reads no files.
import type { CatalogLine } from '../catalog/catalog_file';
import { StoreValidationError } from './errors';
import type { CatalogStore } from './store';

export interface SeedResult {
  /** False when the store had already been seeded: nothing was written. */
  seeded: boolean;
  /** Rows inserted of each entity (rows an interrupted earlier seed had written are not counted again). */
  advertisers: number;
  campaigns: number;
  ads: number;
}

const counted = { advertiser: 'advertisers', campaign: 'campaigns', ad: 'ads' } as const;

/**
 * Imports the catalog's lines into a store created since its last seed, in transactions of up to
 * `batchSize` rows of one kind, each row validated as a create; `catalogSha256` names the catalog
 * for StoreSync. Safe to run again after an interruption, and from several replicas at once: rows
 * already present are skipped, and the store is marked seeded at the end.
 */
export async function seedFromCatalog(
  store: CatalogStore,
  lines: AsyncIterable<CatalogLine> | Iterable<CatalogLine>,
  options: { batchSize?: number; catalogSha256: string },
): Promise<SeedResult> {
  const result: SeedResult = { seeded: false, advertisers: 0, campaigns: 0, ads: 0 };
  if (!(await store.seedPending())) return result;
  const batchSize = options.batchSize ?? 5000;
  let batch: CatalogLine[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const { kind } = batch[0]!;
    try {
      result[counted[kind]] += await store.importBatch(
        kind,
        batch.map((line) => line.row),
      );
    } catch (error) {
      if (!(error instanceof StoreValidationError)) throw error;
      // importBatch names fields by their index in the batch: "[3].bid_micros".
      const [, index, rest] = /^\[(\d+)\]\.(.*)$/.exec(error.field) ?? [undefined, '0', error.field];
      throw new StoreValidationError(`line ${batch[Number(index)]!.line}: ${rest}`, error.reason);
    }
    batch = [];
  };
  for await (const line of lines) {
    // A batch holds one kind, so the advertiser a campaign names is committed before it.
    if (batch.length >= batchSize || (batch.length > 0 && batch[0]!.kind !== line.kind)) await flush();
    batch.push(line);
  }
  await flush();
  await store.markSeeded({ catalogSha256: options.catalogSha256 });
  result.seeded = true;
  return result;
}
