// Loads a model directory while the current one keeps serving, warms it, and swaps it in. Requests
// read the serving model once, before their first await, so every request already in the engine
// queue of the old model is scored by it; closing the old engine drains that queue.
import path from 'node:path';

import type { Config } from '../config';
import { addon } from '../engine/addon';
import { readModelDir } from '../engine/model_dir';
import { closeServing, openServing, type Serving } from '../engine/serving';
import { cannotFill, warmUp, warmUpRequests } from '../engine/warm_up';
import { createMetrics, type Metrics } from '../metrics';
import type { Money } from '../money/money';
import { type DecisionContext, decideAds } from './ad_decision';
import { ModelHistory } from './model_history';
import { DecisionScratch } from './scratch';
import type { StoreSync } from './store_sync';

export class SwapInProgressError extends Error {}

export class NothingToRollBackError extends Error {}

export class ModelSwapper {
  private loading: string | undefined;

  /** Metrics of the swapper's own trial decisions, kept out of /metrics. */
  private readonly trialMetrics: Metrics;

  /** What served arm A before each swap; a rollback takes the latest back out. */
  readonly history: ModelHistory;

  constructor(
    private readonly context: DecisionContext,
    private readonly config: Config,
    private readonly root: string,
    private readonly money: Money,
    private readonly sync: StoreSync,
  ) {
    this.trialMetrics = createMetrics(addon.buildInfo(), 'model-swap-trial');
    this.history = ModelHistory.open(path.resolve(root, config.dataDir));
  }

  get loadingDir(): string | undefined {
    return this.loading;
  }

  /**
   * Opens and warms the model at `dir` (relative to the project root), then makes it arm A (the
   * serving model) or arm B (the challenger of an A/B test, taking `share` of users).
   */
  swap(dir: string, arm: 'a' | 'b' = 'a', share = 0.1): Promise<Serving> {
    return this.load(dir, arm, share, (replaced) => {
      if (arm === 'a' && replaced) this.history.push({ dir: replaced.modelDir, modelVersion: replaced.modelVersion, modelSha256: replaced.modelSha256 });
    });
  }

  /**
   * Swaps arm A back to the model that served before the last swap, through the same verification
   * and warm-up; the history forgets that entry only once it serves again.
   */
  async rollBack(): Promise<Serving> {
    const previous = this.history.latest;
    if (!previous) throw new NothingToRollBackError('no earlier model served arm A');
    return this.load(previous.dir, 'a', 0, () => this.history.dropLatest());
  }

  /** `record` notes the swap in the history once `next` has passed every check, before it serves; if it throws, nothing changes. */
  private async load(dir: string, arm: 'a' | 'b', share: number, record: (replaced: Serving | undefined) => void): Promise<Serving> {
    if (this.loading) throw new SwapInProgressError(`already loading ${this.loading}`);
    const resolved = path.resolve(this.root, dir);
    this.loading = resolved;
    try {
      const model = readModelDir(resolved);
      const next = await openServing(model, this.config, this.money, { catalog: (opened, options) => this.sync.load(opened, options) });
      const previous = arm === 'a' ? this.context.serving : this.context.challenger?.serving;
      try {
        // The store's ads this model was not trained on are embedded before it serves.
        await this.sync.adopt(next);
        const problem = cannotFill(await warmUp(next));
        if (problem) throw new Error(`${resolved} cannot fill: ${problem}`);
        await this.fillsLike(next, previous ?? this.context.serving, resolved);
        record(previous);
      } catch (error) {
        this.close(next);
        throw error;
      }
      if (arm === 'a') this.context.serving = next;
      else this.context.challenger = { serving: next, share };
      if (previous) this.close(previous);
      return next;
    } finally {
      this.loading = undefined;
    }
  }

  /** Ends an A/B test: arm B's users go back to arm A, and its engine drains and closes. */
  removeChallenger(): boolean {
    const challenger = this.context.challenger;
    if (!challenger) return false;
    this.context.challenger = undefined;
    this.close(challenger.serving);
    return true;
  }

  private close(serving: Serving): void {
    this.sync.release(serving);
    closeServing(serving);
  }

  /** How many warm-up requests `serving` fills through the whole ad decision. */
  private async trialFills(serving: Serving): Promise<number> {
    // A random source of 0 lets every campaign pacing has not stopped outright take part, so the
    // comparison does not hang on the draws.
    const context: DecisionContext = {
      config: this.config,
      serving,
      signingKey: this.context.signingKey,
      metrics: this.trialMetrics,
      clock: this.context.clock,
      random: () => 0,
      scratch: new DecisionScratch(),
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
