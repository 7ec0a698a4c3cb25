// When the micro-batcher waits for company and when it does not (native/engine/batcher.h): the
// requests of one event-loop turn go to it as one group; it waits up to maxDelayUs only while
// groups keep arriving faster than that; with several batcher threads, the idle ones share what is
// queued.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { defaults } from '../../src/config';
import type { NativeEngine, ScoreResult } from '../../src/engine/addon';
import { adHistory, type EngineSettings, openEngine } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { tinyModelDir } from '../setup/tiny_model';

const model = readModelDir(tinyModelDir);
const modelCatalog = catalogFromFile(model);
const settings = (maxDelayUs: number, threads = 1, maxBatch = 32): EngineSettings => ({
  index: { kind: 'flat' },
  fusion: 'precomputed',
  annCandidates: 100,
  scoreCandidates: 20,
  batching: { maxBatch, maxDelayUs, queueCapacity: 256, threads },
  light: lightWeights(defaults),
});
// Long enough that a request held for it is unmistakable beside the tiny model's scoring time.
const delayMs = 20;
let patient: NativeEngine;
let immediate: NativeEngine;
let twoThreads: NativeEngine;

const queries = ['running shoes', 'dog food', 'usb cable', 'yoga mat', 'coffee beans', 'desk lamp'];
const body = (i: number): Uint8Array => encodeAdRequest({ query: queries[i % queries.length], userId: model.userIds[i % model.userIds.length] });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  patient = await openEngine(model, modelCatalog, adHistory(model), settings(delayMs * 1000));
  immediate = await openEngine(model, modelCatalog, adHistory(model), settings(0));
  twoThreads = await openEngine(model, modelCatalog, adHistory(model), settings(0, 2));
});

afterAll(() => {
  patient.close();
  immediate.close();
  twoThreads.close();
});

describe('the micro-batcher', () => {
  it('scores requests that come further apart than maxDelayUs at once instead of holding each for it', async () => {
    for (let i = 0; i < 6; i++) {
      const result = await patient.score(body(i), 5000);
      expect(result.batchSize).toBe(1);
      expect(result.queueWaitNs / 1e6).toBeLessThan(delayMs / 2);
      await sleep(3 * delayMs);
    }
  });

  it('batches every request of one event-loop turn together, with no delay to wait for', async () => {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => immediate.score(body(i), 5000)));
    expect(results.map((result) => result.batchSize)).toEqual(Array(16).fill(16));
    const again = await immediate.score(body(3), 5000);
    expect(Array.from(results[3]!.ctrLogit)).toEqual(Array.from(again.ctrLogit));
  });

  it('waits for company while requests keep arriving faster than maxDelayUs, one per turn', async () => {
    const pending: Promise<ScoreResult>[] = [];
    for (let i = 0; i < 24; i++) {
      pending.push(patient.score(body(i), 5000));
      await sleep(1);
    }
    // The first few go alone while the gaps still average "sparse"; the rest gather.
    const sizes = (await Promise.all(pending)).map((result) => result.batchSize);
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(8);
  });

  it('splits what is queued between idle batcher threads, and scores each request as one thread would', async () => {
    const bodies = Array.from({ length: 16 }, (_, i) => body(i));
    const split = await Promise.all(bodies.map((bytes) => twoThreads.score(bytes, 5000)));
    expect(split.map((result) => result.batchSize)).toEqual(Array(16).fill(8));
    const whole = await Promise.all(bodies.map((bytes) => immediate.score(bytes, 5000)));
    expect(split.map((result) => Array.from(result.ctrLogit))).toEqual(whole.map((result) => Array.from(result.ctrLogit)));
    expect(split.map((result) => Array.from(result.adIndex))).toEqual(whole.map((result) => Array.from(result.adIndex)));
  });

  it('scores every request still queued when an engine with several batcher threads closes', async () => {
    // Batches of 2: most of the 100 are still queued when close() is called.
    const engine = await openEngine(model, modelCatalog, adHistory(model), settings(0, 3, 2));
    const pending = Array.from({ length: 100 }, (_, i) => engine.score(body(i), 5000));
    await new Promise(setImmediate); // after the turn's requests went to the batcher
    engine.close();
    const results = await Promise.all(pending);
    expect(results.every((result) => result.adIndex.length > 0 && !result.degraded)).toBe(true);
  });
});
