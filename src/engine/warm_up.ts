// The requests a model answers before it serves, and what its answers say about whether it can fill.
import { encodeAdRequest } from '../protocol/encode_request';
import { Placement } from '../protocol/schema';
import type { Serving } from './serving';

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
