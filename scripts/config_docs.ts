// Writes README.md's configuration table from the settings table in src/config.ts, so the two
// cannot drift apart: `npm run docs:config` rewrites it, test/scripts/config_docs.test.ts fails
// while it is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { type Setting, settings } from '../src/config';
import { projectRoot } from '../src/paths';

export const readmePath = path.join(projectRoot, 'README.md');
export const tableStart = '<!-- config table: written by `npm run docs:config` from src/config.ts; edit it there -->';
export const tableEnd = '<!-- end of config table -->';

const code = (text: string): string => `\`${text}\``;

function defaultText(setting: Setting): string {
  if (setting.type === 'string' && setting.default === '') return '(empty)';
  return code(typeof setting.default === 'object' ? JSON.stringify(setting.default) : String(setting.default));
}

function boundsText(setting: Setting): string {
  switch (setting.type) {
    case 'string':
      return setting.nonEmpty ? 'non-empty text' : 'text, may be empty';
    case 'integer':
      return `integer ${setting.min}..${setting.max}`;
    case 'number':
      return `${setting.min}..${setting.max}`;
    case 'choice':
      return setting.values.map(code).join(', ');
    case 'list':
      return 'non-empty strings, comma-separated in the environment';
    case 'numbers':
      return `1..${setting.maxLength} numbers in ${setting.min}..${setting.max}${setting.nonIncreasing ? ', non-increasing' : ''}, comma-separated in the environment`;
    case 'placements':
      return 'object keyed by placement, JSON in the environment';
  }
}

/** The Markdown table of every setting, one row each, in the table's order. */
export function configTable(): string {
  const cell = (text: string): string => text.replaceAll('|', '\\|');
  const rows = Object.entries(settings as Record<string, Setting>).map(
    ([key, setting]) => `| ${code(key)} | ${code(setting.env)} | ${defaultText(setting)} | ${cell(boundsText(setting))} | ${cell(setting.doc)} |`,
  );
  return ['| key | env | default | bounds | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** `readme` with the text between the table markers replaced by configTable(). */
export function withConfigTable(readme: string): string {
  const start = readme.indexOf(tableStart);
  const end = readme.indexOf(tableEnd);
  if (start < 0 || end < start) throw new Error(`README.md lacks the config table markers ${tableStart} ... ${tableEnd}`);
  return `${readme.slice(0, start + tableStart.length)}\n${configTable()}\n${readme.slice(end)}`;
}

if (require.main === module) {
  writeFileSync(readmePath, withConfigTable(readFileSync(readmePath, 'utf8')));
}
