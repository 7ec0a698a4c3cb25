// Admin model routes: the serving model and any A/B challenger, hot swaps with warm-up, and the
// end of an A/B test.
import { ModelDirError } from '../engine/model_dir';
import { removeChallenger, SwapInProgressError } from '../pipeline/model_swap';
import type { Serving } from '../engine/serving';
import { RequestError } from '../errors';
import { type AdminCall, type AdminDeps, type AdminRoute, readJson, sendJson } from './admin_route';

function describe({ decision, swapper }: AdminDeps) {
  const about = (serving: Serving | undefined) => (serving ? { version: serving.modelVersion, dir: serving.modelDir, ...serving.engine.stats() } : null);
  return {
    serving: about(decision.serving),
    challenger: decision.challenger ? { ...about(decision.challenger.serving), share: decision.challenger.share } : null,
    loading: swapper.loadingDir ?? null,
  };
}

function endAbTest({ exchange, deps }: AdminCall): void {
  if (!removeChallenger(deps.decision)) return exchange.fail(new RequestError(404, 'not_found', 'no A/B test is running'));
  deps.log.info('A/B test ended');
  sendJson(exchange, describe(deps));
}

interface SwapRequest {
  dir: string;
  arm: 'a' | 'b';
  share: number;
}

function swapRequestOf(json: unknown): SwapRequest {
  const { dir, arm = 'a', share = 0.1 } = (json ?? {}) as { dir?: unknown; arm?: unknown; share?: unknown };
  if (typeof dir !== 'string' || dir.length === 0) throw new RequestError(422, 'invalid_request', '"dir" must name a model directory');
  if (arm !== 'a' && arm !== 'b') throw new RequestError(422, 'invalid_request', '"arm" must be "a" or "b"');
  if (typeof share !== 'number' || !(share > 0 && share < 1)) throw new RequestError(422, 'invalid_request', '"share" must be between 0 and 1');
  return { dir, arm, share };
}

/** What a failed swap answers: the serving models keep serving either way. */
function swapRefusal(error: Error): RequestError {
  if (error instanceof SwapInProgressError) return new RequestError(409, 'conflict', error.message);
  return new RequestError(422, 'invalid_model', error instanceof ModelDirError ? error.message : `cannot load model: ${error.message}`);
}

function swapModel(call: AdminCall): void {
  const { exchange, deps } = call;
  readJson(call, (json) => {
    const { dir, arm, share } = swapRequestOf(json);
    deps.log.info('model swap requested', { dir, arm, share });
    deps.swapper.swap(dir, arm, share).then(
      (serving) => {
        deps.log.info('model swapped in', { version: serving.modelVersion, dir: serving.modelDir });
        sendJson(exchange, describe(deps));
      },
      (error: Error) => {
        deps.log.warn('model swap failed', { dir, error: error.message });
        exchange.fail(swapRefusal(error));
      },
    );
  });
}

export const modelRoutes: readonly AdminRoute[] = [
  { method: 'get', pattern: '/v1/admin/models', handle: ({ exchange, deps }) => sendJson(exchange, describe(deps)) },
  { method: 'post', pattern: '/v1/admin/models', handle: swapModel },
  { method: 'del', pattern: '/v1/admin/models/b', handle: endAbTest },
];
