// The models that served arm A before each swap, most recent last, for rollback. Kept in memory
// and in the data directory (model-history.json, written aside then renamed), so a restarted
// daemon still rolls back to what served before the last swap.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { writeDurably } from '../durable_file';

export interface ServedModel {
  dir: string;
  modelVersion: string;
  modelSha256: string;
}

const fileName = 'model-history.json';

/** Rollbacks further back than this are a deploy, not an undo. */
const maxEntries = 20;

function isServedModel(value: unknown): value is ServedModel {
  const entry = value as Partial<ServedModel> | null;
  return typeof entry?.dir === 'string' && typeof entry.modelVersion === 'string' && typeof entry.modelSha256 === 'string';
}

export class ModelHistory {
  private constructor(
    private readonly dataDir: string,
    private served: ServedModel[],
  ) {}

  static open(dataDir: string): ModelHistory {
    mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, fileName);
    if (!existsSync(file)) return new ModelHistory(dataDir, []);
    let served: unknown;
    try {
      served = (JSON.parse(readFileSync(file, 'utf8')) as { served?: unknown }).served;
    } catch (error) {
      throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
    }
    if (!Array.isArray(served) || !served.every(isServedModel)) throw new Error(`${file} does not hold a model history`);
    return new ModelHistory(dataDir, served);
  }

  get entries(): readonly ServedModel[] {
    return this.served;
  }

  get latest(): ServedModel | undefined {
    return this.served.at(-1);
  }

  /** Records the model a swap replaced. */
  push(model: ServedModel): void {
    this.record([...this.served, model].slice(-maxEntries));
  }

  /** Forgets the latest entry, once a rollback has put it back into service. */
  dropLatest(): void {
    this.record(this.served.slice(0, -1));
  }

  private record(next: ServedModel[]): void {
    // Durable first: memory never claims a history the file does not hold.
    writeDurably(this.dataDir, fileName, JSON.stringify({ served: next }));
    this.served = next;
  }
}
