import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';

import { BulkHistogram } from '../src/bulk_histogram';
import { seededRandom } from './helpers/random';

const buckets = [0.00001, 0.000025, 0.0001, 0.001, 0.01, 0.1];

/** The same metric declared both ways, each in its own registry. */
function pair(labelNames: string[]): { prom: Histogram<string>; bulk: BulkHistogram<string>; promRegistry: Registry; bulkRegistry: Registry } {
  const promRegistry = new Registry();
  const bulkRegistry = new Registry();
  const config = { name: 'adserve_test_seconds', help: 'A test histogram.', labelNames, buckets };
  return {
    prom: new Histogram({ ...config, registers: [promRegistry] }),
    bulk: new BulkHistogram({ ...config, registers: [bulkRegistry] }),
    promRegistry,
    bulkRegistry,
  };
}

describe('bulk histograms', () => {
  it("scrape as prom-client's histograms of the same observations: series in first-seen order, values past the last bound, sums to the bit", async () => {
    const random = seededRandom(7);
    const { prom, bulk, promRegistry, bulkRegistry } = pair(['stage']);
    const stages = ['score', 'parse', 'encode', 'never'];
    const promSeries = stages.map((stage) => prom.labels({ stage }));
    const bulkSeries = stages.map((stage) => bulk.labels({ stage }));
    for (let i = 0; i < 5000; i++) {
      const series = Math.floor(random() * 3);
      // Exact bounds, values under the first and over the last bound, and a spread between.
      const value = i % 50 === 0 ? buckets[i % buckets.length]! : i % 77 === 0 ? 0.5 : i % 91 === 0 ? 0 : random() ** 4 * 0.02;
      promSeries[series]!.observe(value);
      bulkSeries[series]!.observe(value);
    }
    const text = await bulkRegistry.metrics();
    expect(text).toBe(await promRegistry.metrics());
    expect(text).toMatch(/adserve_test_seconds_bucket\{le="\+Inf",stage="score"\} [1-9]/);
    expect(text).not.toMatch(/stage="never"/);
    expect(await bulkRegistry.getMetricsAsJSON()).toEqual(await promRegistry.getMetricsAsJSON());
  });

  it('without labels, lists zeros before the first observation, counts like prom-client, and starts again after a reset', async () => {
    const { prom, bulk, promRegistry, bulkRegistry } = pair([]);
    expect(await bulkRegistry.metrics()).toBe(await promRegistry.metrics());
    for (const value of [3, 0.001, 0.00001, 7e-6]) {
      prom.observe(value);
      bulk.observe(value);
    }
    expect(await bulkRegistry.metrics()).toBe(await promRegistry.metrics());
    promRegistry.resetMetrics();
    bulkRegistry.resetMetrics();
    expect(await bulkRegistry.metrics()).toBe(await promRegistry.metrics());
    prom.observe(0.05);
    bulk.observe(0.05);
    expect(await bulkRegistry.metrics()).toBe(await promRegistry.metrics());
  });

  it('leaves out values that are not finite instead of throwing', async () => {
    const { bulk, bulkRegistry } = pair([]);
    bulk.observe(Number.NaN);
    bulk.observe(Number.POSITIVE_INFINITY);
    bulk.observe(0.5);
    expect(await bulkRegistry.metrics()).toMatch(/adserve_test_seconds_count 1\n/);
  });
});
