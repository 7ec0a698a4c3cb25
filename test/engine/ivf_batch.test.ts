import { expect, it } from 'vitest';

import { defaults } from '../../src/config';
import { addon, type ScoreResult } from '../../src/engine/addon';
import { adHistory, engineOptions, type EngineSettings } from '../../src/engine/engine';
import { catalogFromFile } from '../../src/engine/model_catalog';
import { readModelDir } from '../../src/engine/model_dir';
import { lightWeights } from '../../src/engine/serving';
import { encodeAdRequest } from '../../src/protocol/encode_request';
import { tinyModelDir } from '../setup/tiny_model';

const model = readModelDir(tinyModelDir);
const modelCatalog = catalogFromFile(model);
const { catalog } = modelCatalog;

// The IVF scan reads each probed list once for all the batch's queries that probe it; what a
// request gets must still be what it gets alone, whichever requests share its batch.
// k = 30 of 400 ads: the automatic nprobe scans 12 of the 20 lists, so batch neighbours probe
// overlapping but different lists.
const settingsFor = (index: EngineSettings['index']): EngineSettings => ({
  index,
  fusion: 'precomputed',
  annCandidates: 30,
  scoreCandidates: 30,
  batching: { maxBatch: 32, maxDelayUs: 2000, queueCapacity: 256 },
  light: lightWeights(defaults),
});
const targeting = Array.from({ length: catalog.size }, (_, ad) => ad)
  .filter((ad) => ad % 5 === 0)
  .map((ad) => ({ ad, rules: [[{ type: 'geo' as const, value: ad % 10 === 0 ? 'JP' : 'US' }]] }));
const openWith = (index: EngineSettings['index']) =>
  addon.openEngine({ ...engineOptions(model, modelCatalog, adHistory(model), settingsFor(index)), targeting });
const queries = ['running shoes', 'dog food', 'usb cable', 'yoga mat', 'coffee beans', 'gift', 'shoes dog', 'cable mat', 'mat', 'beans gift', 'usb', 'dog'];
const requests = queries.flatMap((query, i) => [
  encodeAdRequest({ query, userId: model.userIds[i], country: i % 2 === 0 ? 'US' : 'JP' }),
  encodeAdRequest({ query, country: 'DE', blockedCategories: [catalog.category[i]!] }),
]);

it.each(['sq8', 'float'] as const)('answers a request in a batch exactly as alone (%s scan), each with its own filter', async (ivfScan) => {
  // Batches reach past 20 queries, where FAISS's own coarse search would switch to one matrix
  // product for the batch.
  const engine = await openWith({ kind: 'ivf', ivfScan });
  try {
    const alone: ScoreResult[] = [];
    for (const request of requests) alone.push(await engine.score(request, 5000));
    expect(alone.every((result) => result.batchSize === 1)).toBe(true);
    for (const order of [requests.map((_, i) => i), requests.map((_, i) => requests.length - 1 - i)]) {
      const together = await Promise.all(order.map((i) => engine.score(requests[i]!, 5000)));
      expect(Math.max(...together.map((result) => result.batchSize))).toBeGreaterThan(20);
      together.forEach((result, j) => {
        const i = order[j]!;
        expect(Array.from(result.adIndex), `request ${i}`).toEqual(Array.from(alone[i]!.adIndex));
        expect(Array.from(result.light), `request ${i}`).toEqual(Array.from(alone[i]!.light));
      });
    }
    // Requests differ, so a scan that mixed up whose scores are whose would show.
    expect(new Set(alone.map((result) => Array.from(result.adIndex).join())).size).toBeGreaterThan(requests.length / 2);
  } finally {
    engine.close();
  }
});

// The 8-bit scan's kernels sum integers, so each gives the same candidates and scores; a kernel
// that mixed up lanes, groups or queries would hand some request other ads.
it('answers every request alike with each 8-bit scan kernel this CPU runs', async () => {
  const kernels = addon.buildInfo().scanKernels;
  expect(kernels.at(-1)).toBe('portable');
  const answers: ScoreResult[][] = [];
  for (const scanKernel of kernels) {
    const engine = await openWith({ kind: 'ivf', ivfScan: 'sq8', scanKernel });
    try {
      expect(engine.stats().index).toContain(`scan=sq8(${scanKernel})`);
      answers.push(await Promise.all(requests.map((request) => engine.score(request, 5000))));
    } finally {
      engine.close();
    }
  }
  answers.slice(1).forEach((answer, k) =>
    answer.forEach((result, i) => {
      expect(Array.from(result.adIndex), `${kernels[k + 1]}, request ${i}`).toEqual(Array.from(answers[0]![i]!.adIndex));
      expect(Array.from(result.light), `${kernels[k + 1]}, request ${i}`).toEqual(Array.from(answers[0]![i]!.light));
    }),
  );
  await expect(openWith({ kind: 'ivf', ivfScan: 'sq8', scanKernel: 'sse9' })).rejects.toThrow(/scanKernel 'sse9' is not one this CPU runs/);
});
