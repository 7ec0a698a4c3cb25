// Stage "score" (the engine's user, context, retrieve, light_score and score stages, timed by the
// engine per batch): the request's candidates with their model logits.
import { isNativeError, type NativeEngine, type ScoreResult } from '../engine/addon';
import { RequestError } from '../errors';

/**
 * Scores within `budgetMs`, as an anonymous user unless `personalised`; a full queue or a closing
 * engine becomes a 503 the client may retry.
 */
export async function scoreCandidates(
  engine: NativeEngine,
  body: Uint8Array,
  budgetMs: number,
  excluded: Uint32Array,
  personalised: boolean,
): Promise<ScoreResult> {
  try {
    return await engine.score(body, Math.max(0, budgetMs), excluded, personalised);
  } catch (error) {
    if (isNativeError(error) && (error.code === 'E_QUEUE_FULL' || error.code === 'E_SHUTTING_DOWN')) {
      throw new RequestError(503, 'overloaded', `${error.message}; retry shortly`);
    }
    throw error;
  }
}
