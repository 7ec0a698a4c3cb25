// A catalog as JSON lines (catalog.jsonl in a model directory, the body of a catalog import): one
// advertiser, campaign or ad per line, with its `kind`, advertisers and campaigns before the ads
// that name them. Read a line at a time, so no string ever holds the whole catalog.
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import type { CatalogJson } from './catalog_json';

const sections = { advertiser: 'advertisers', campaign: 'campaigns', ad: 'ads' } as const;
export type CatalogKind = keyof typeof sections;

export interface CatalogLine {
  /** 1-based line number in the file. */
  line: number;
  kind: CatalogKind;
  row: Record<string, unknown>;
}

export class CatalogFileError extends Error {}

function parseLine(file: string, line: number, text: string): CatalogLine {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CatalogFileError(`${file}:${line}: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CatalogFileError(`${file}:${line}: not a JSON object`);
  const { kind, ...row } = json as Record<string, unknown>;
  if (typeof kind !== 'string' || !Object.hasOwn(sections, kind)) throw new CatalogFileError(`${file}:${line}: kind must be advertiser, campaign or ad`);
  return { line, kind: kind as CatalogKind, row };
}

/** The file's lines in order, streamed; blank lines are skipped. */
export async function* catalogFileLines(file: string): AsyncGenerator<CatalogLine> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() !== '') yield parseLine(file, line, text);
  }
}

/** The whole file as catalog sections, for tools and tests over small catalogs; each line is parsed from its own slice of the bytes. */
export function readCatalogFile(file: string): CatalogJson {
  const bytes = readFileSync(file);
  const catalog: CatalogJson = { advertisers: [], campaigns: [], ads: [] };
  let line = 0;
  for (let start = 0; start < bytes.length;) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline === -1 ? bytes.length : newline;
    line++;
    const text = bytes.toString('utf8', start, end);
    if (text.trim() !== '') {
      const { kind, row } = parseLine(file, line, text);
      (catalog[sections[kind]] as unknown[]).push(row);
    }
    start = end + 1;
  }
  return catalog;
}

export function writeCatalogFile(file: string, catalog: CatalogJson): void {
  const lines = (Object.entries(sections) as Array<[CatalogKind, keyof CatalogJson]>).flatMap(([kind, section]) =>
    catalog[section].map((row) => JSON.stringify({ kind, ...row })),
  );
  writeFileSync(file, lines.map((text) => `${text}\n`).join(''));
}
