import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { settings } from '../../src/config';
import { configTable, readmePath, withConfigTable } from '../../scripts/config_docs';

describe("README's configuration table", () => {
  it('is the one src/config.ts generates (npm run docs:config rewrites it)', () => {
    const readme = readFileSync(readmePath, 'utf8');
    expect(withConfigTable(readme)).toBe(readme);
  });

  it('has one row per setting, in the table order, naming its key, variable and default', () => {
    const rows = configTable().split('\n').slice(2);
    expect(rows).toHaveLength(Object.keys(settings).length);
    Object.entries(settings).forEach(([key, setting], i) => {
      expect(rows[i]!.startsWith(`| \`${key}\` | \`${setting.env}\` | `)).toBe(true);
    });
    expect(rows.find((row) => row.startsWith('| `port` '))).toContain('| `8080` | integer 0..65535 |');
    expect(rows.find((row) => row.startsWith('| `adminToken` '))).toContain('| (empty) |');
  });
});
