// Loads a model directory while the current one keeps serving, warms it, and swaps it in. Requests
// read the serving model once, before their first await, so every request already in the engine
// queue of the old model is scored by it; closing the old engine drains that queue.
import path from 'node:path';

import type { CatalogChanges } from '../catalog/catalog_changes';
import type { Config } from '../config';
import type { SpendStore } from '../money/spend_store';
import type { DecisionContext } from '../pipeline/ad_decision';
import { encodeAdRequest } from '../protocol/encode_request';
import { Placement } from '../protocol/schema';
import { readModelDir } from './model_dir';
import { openServing, type Serving } from './serving';

export class SwapInProgressError extends Error {}

/**
 * Requests that run every tower several times: TorchScript's profiling executor optimises a method
 * over its first runs, which are many times slower (150 ms seen), so they must not meet real
 * traffic. Each round differs in query, product and demographics, or the embedding caches would
 * answer instead of the towers.
 */
export function warmUpRequests(): Uint8Array[] {
  return Array.from({ length: 4 }, (_, round) =>
    [Placement.Search, Placement.ProductPage, Placement.Homepage].map((placement) =>
      encodeAdRequest({ id: `warm-up-${round}`, placement, query: `warm up ${round}`, productId: `warm-up-${round}`, yob: 1960 + 10 * round }),
    ),
  ).flat();
}

export async function warmUp(serving: Serving): Promise<void> {
  for (const request of warmUpRequests()) {
    const result = await serving.engine.score(request, 10_000);
    if (result.degraded) throw new Error('warm-up request was answered degraded');
  }
}

export class ModelSwapper {
  private loading: string | undefined;

  constructor(
    private readonly context: DecisionContext,
    private readonly config: Config,
    private readonly root: string,
    private readonly spend: SpendStore,
    private readonly changes: CatalogChanges,
  ) {}

  get loadingDir(): string | undefined {
    return this.loading;
  }

  /**
   * Opens and warms the model at `dir` (relative to the project root), then makes it arm A (the
   * serving model) or arm B (the challenger of an A/B test, taking `share` of users).
   */
  async swap(dir: string, arm: 'a' | 'b' = 'a', share = 0.1): Promise<Serving> {
    if (this.loading) throw new SwapInProgressError(`already loading ${this.loading}`);
    const resolved = path.resolve(this.root, dir);
    this.loading = resolved;
    try {
      const next = await openServing(readModelDir(resolved), this.config, this.spend, this.changes);
      try {
        await warmUp(next);
      } catch (error) {
        next.engine.close();
        throw error;
      }
      const previous = arm === 'a' ? this.context.serving : this.context.challenger?.serving;
      if (arm === 'a') this.context.serving = next;
      else this.context.challenger = { serving: next, share };
      previous?.engine.close();
      return next;
    } finally {
      this.loading = undefined;
    }
  }
}

/** Ends an A/B test: arm B's users go back to arm A, and its engine drains and closes. */
export function removeChallenger(context: DecisionContext): boolean {
  const challenger = context.challenger;
  if (!challenger) return false;
  context.challenger = undefined;
  challenger.serving.engine.close();
  return true;
}
