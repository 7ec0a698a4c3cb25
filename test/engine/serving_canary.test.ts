import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { CatalogChanges } from '../../src/catalog/catalog_changes';
import { loadConfig } from '../../src/config';
import { readModelDir } from '../../src/engine/model_dir';
import { openServing, type Serving } from '../../src/engine/serving';
import { ServingCanary } from '../../src/engine/serving_canary';
import { createLogger } from '../../src/log';
import { Ledger } from '../../src/money/ledger';
import { Money } from '../../src/money/money';
import { LocalSpendStore } from '../../src/money/spend_store';
import { nanHeadsModel } from '../helpers/models';
import { tinyModelDir } from '../setup/tiny_model';

let healthy: Serving;
let nanScores: Serving;
const logged: string[] = [];
const canary = new ServingCanary(createLogger('info', (line) => logged.push(line)));

async function open(dir: string): Promise<Serving> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-canary-'));
  const spend = new LocalSpendStore(
    await Ledger.open(dataDir, { snapshotEvents: 100_000, eventRetentionMs: 2 * 86_400_000, reportRetentionHours: 24 }),
    86_400_000,
  );
  return openServing(readModelDir(dir), loadConfig({ ADSERVE_INDEX_CACHE_DIR: '' }), new Money(spend), CatalogChanges.open(dataDir));
}

beforeAll(async () => {
  healthy = await open(tinyModelDir);
  nanScores = await open(nanHeadsModel());
});

afterAll(() => {
  healthy.engine.close();
  nanScores.engine.close();
});

const everyAd = (serving: Serving): Uint32Array => Uint32Array.from({ length: serving.catalog.size }, (_, ad) => ad);
const setEligible = (serving: Serving, eligible: 0 | 1): void =>
  serving.engine.setEligibility(everyAd(serving), new Uint8Array(serving.catalog.size).fill(eligible));

it('finds a serving model that cannot fill, and keeps that verdict while nothing is eligible', async () => {
  await canary.check(nanScores);
  expect(canary.problemOf(nanScores)).toMatch(/none of the \d+ candidates of the warm-up requests got a finite score/);
  expect(logged.join('')).toContain('the serving model cannot fill');
  setEligible(nanScores, 0);
  await canary.check(nanScores);
  expect(canary.problemOf(nanScores)).toMatch(/finite score/);
});

it('clears the verdict once a round shows the model fills, and an empty or closing engine does not set one', async () => {
  canary.record(healthy, 'a problem seen at load');
  await canary.check(healthy);
  expect(canary.problemOf(healthy)).toBeUndefined();
  expect(logged.join('')).toContain('the serving model fills again');
  setEligible(healthy, 0);
  await canary.check(healthy);
  expect(canary.problemOf(healthy)).toBeUndefined();
  setEligible(healthy, 1);
  healthy.engine.close();
  await canary.check(healthy);
  expect(canary.problemOf(healthy)).toBeUndefined();
});
