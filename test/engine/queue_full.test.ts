import { expect, it } from 'vitest';

import { addon } from '../../src/engine/addon';

// Runs in its own process (vitest forks per file), so the thread budget can still be set.
it('sheds work beyond the queue capacity with E_QUEUE_FULL and completes the rest', async () => {
  addon.configure({ workerThreads: 1, queueCapacity: 4 });
  const dim = 64;
  const index = new addon.VectorIndex(dim, new Float32Array(200_000 * dim).fill(0.01));
  const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => index.search(new Float32Array(dim).fill(1), 5)));
  const rejected = outcomes.filter((o) => o.status === 'rejected') as PromiseRejectedResult[];
  const fulfilled = outcomes.filter((o) => o.status === 'fulfilled');
  expect(rejected.length).toBeGreaterThan(0);
  expect(fulfilled.length).toBeGreaterThanOrEqual(4);
  for (const failure of rejected) expect(failure.reason).toMatchObject({ code: 'E_QUEUE_FULL' });
  expect(addon.buildInfo().workerThreads).toBe(1);
});
