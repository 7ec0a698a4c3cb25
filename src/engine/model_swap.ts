// Loads a model directory while the current one keeps serving, warms it, and swaps it in. Requests
// read the serving model once, before their first await, so every request already in the engine
// queue of the old model is scored by it; closing the old engine drains that queue.
import path from 'node:path';

import type { CatalogChanges } from '../catalog/catalog_changes';
import type { Config } from '../config';
import { createMetrics, type Metrics } from '../metrics';
import type { SpendStore } from '../money/spend_store';
import { type DecisionContext, decideAds } from '../pipeline/ad_decision';
import { DecisionScratch } from '../pipeline/scratch';
import { encodeAdRequest } from '../protocol/encode_request';
import { Placement } from '../protocol/schema';
import { addon } from './addon';
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

/** Longest a warm-up request may wait for its model score; past it the engine answers degraded. */
const warmUpBudgetMs = 10_000;

/** What the engine's answers to the warm-up requests held. */
export interface WarmUpAnswers {
  candidates: number;
  /** Candidates whose lightweight score and both logits are finite. */
  scored: number;
  /** Answers that got no model score within the budget. */
  degraded: number;
}

/** Runs the warm-up requests through the engine; `onAnswer` hears of each answer (start-up progress). */
export async function warmUp(serving: Serving, onAnswer?: () => void): Promise<WarmUpAnswers> {
  const answers: WarmUpAnswers = { candidates: 0, scored: 0, degraded: 0 };
  for (const request of warmUpRequests()) {
    const result = await serving.engine.score(request, warmUpBudgetMs);
    onAnswer?.();
    if (result.degraded) answers.degraded++;
    answers.candidates += result.adIndex.length;
    for (let i = 0; i < result.adIndex.length; i++) {
      if (Number.isFinite(result.light[i]) && Number.isFinite(result.ctrLogit[i]) && Number.isFinite(result.cvrLogit[i])) answers.scored++;
    }
  }
  return answers;
}

/**
 * Why the warm-up answers show the model cannot fill, or undefined when they do not. Answers
 * without candidates say nothing about the model (every ad paused, over budget or targeted
 * elsewhere is inventory), so only candidates none of which has a finite score (a model or
 * embeddings producing NaN or infinity) count against it.
 */
export function cannotFill(answers: WarmUpAnswers): string | undefined {
  if (answers.degraded > 0) return `${answers.degraded} warm-up requests got no model score within ${warmUpBudgetMs} ms`;
  if (answers.candidates > 0 && answers.scored === 0) return `none of the ${answers.candidates} candidates of the warm-up requests got a finite score`;
  return undefined;
}

export class ModelSwapper {
  private loading: string | undefined;

  /** Metrics of the swapper's own trial decisions, kept out of /metrics. */
  private readonly trialMetrics: Metrics;

  constructor(
    private readonly context: DecisionContext,
    private readonly config: Config,
    private readonly root: string,
    private readonly spend: SpendStore,
    private readonly changes: CatalogChanges,
  ) {
    this.trialMetrics = createMetrics(addon.buildInfo(), 'model-swap-trial');
  }

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
      const previous = arm === 'a' ? this.context.serving : this.context.challenger?.serving;
      try {
        const problem = cannotFill(await warmUp(next));
        if (problem) throw new Error(`${resolved} cannot fill: ${problem}`);
        await this.fillsLike(next, previous ?? this.context.serving, resolved);
      } catch (error) {
        next.engine.close();
        throw error;
      }
      if (arm === 'a') this.context.serving = next;
      else this.context.challenger = { serving: next, share };
      previous?.engine.close();
      return next;
    } finally {
      this.loading = undefined;
    }
  }

  /** How many warm-up requests `serving` fills through the whole ad decision. */
  private async trialFills(serving: Serving): Promise<number> {
    // A random source of 0 lets every campaign pacing has not stopped outright take part, so the
    // comparison does not hang on the draws.
    const context: DecisionContext = {
      config: this.config, serving, signingKey: this.context.signingKey, metrics: this.trialMetrics, clock: this.context.clock, random: () => 0, scratch: new DecisionScratch(),
    };
    let filled = 0;
    for (const request of warmUpRequests()) if ((await decideAds(request, context)).winners > 0) filled++;
    return filled;
  }

  /**
   * Refuses `next` when it fills none of the warm-up requests while `current` (the model it
   * replaces, or arm A for a first challenger) fills some. Both see the same budgets, pauses and
   * pacing, so an answer left empty by inventory is empty for both.
   */
  private async fillsLike(next: Serving, current: Serving | undefined, dir: string): Promise<void> {
    if (!current) return;
    if ((await this.trialFills(next)) > 0) return;
    const currentFills = await this.trialFills(current);
    if (currentFills > 0) throw new Error(`${dir} filled none of the ${warmUpRequests().length} warm-up requests; the serving model filled ${currentFills}`);
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
