// Campaign and ad edits that daemons before the catalog store recorded per replica, in
// <dataDir>/catalog-changes.json. At start they are written into the store once, so they reach
// every replica and outlive the disk they were on, and the file is renamed aside.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';

export interface LegacyChanges {
  /** Partial campaign bodies by campaign id; null removes an optional field, as in a PATCH. */
  campaigns: Record<string, Record<string, unknown>>;
  ads: Record<string, 'active' | 'paused'>;
}

const fileName = 'catalog-changes.json';

/** The recorded edits, or undefined when this data directory has none (or had them moved already). */
export function readLegacyChanges(dataDir: string): LegacyChanges | undefined {
  const file = path.join(dataDir, fileName);
  if (!existsSync(file)) return undefined;
  let recorded: Partial<LegacyChanges>;
  try {
    recorded = JSON.parse(readFileSync(file, 'utf8')) as Partial<LegacyChanges>;
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  return { campaigns: recorded.campaigns ?? {}, ads: recorded.ads ?? {} };
}

/** Keeps the file for the record, under a name no later start reads again. */
export function retireLegacyChanges(dataDir: string): void {
  renameSync(path.join(dataDir, fileName), path.join(dataDir, `${fileName}.moved-to-store`));
}
