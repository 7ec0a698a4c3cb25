// Admin model routes: the serving model and any A/B challenger, the model repository's versions,
// hot swaps with warm-up, rollback to what served before, and the end of an A/B test.
import { ModelDirError } from '../engine/model_dir';
import { listRepository, repositoryOf, type RepositoryEntry, versionDir } from '../engine/model_repository';
import { NothingToRollBackError, SwapInProgressError } from '../pipeline/model_swap';
import type { Serving } from '../engine/serving';
import { RequestError } from '../errors';
import { type AdminCall, type AdminDeps, type AdminRoute, readJson, sendJson } from './admin_route';

type ListedModel = Omit<RepositoryEntry, 'name' | 'version'> & { name: string | null; version: string | null; arms: Array<'a' | 'b'> };

/**
 * Every version in the repository and every serving model outside it, each with the arms it
 * serves; without a repository, just what serves.
 */
function modelsOf({ decision }: AdminDeps, repositoryEntries: RepositoryEntry[]): ListedModel[] {
  const arms: Array<['a' | 'b', Serving | undefined]> = [
    ['a', decision.serving],
    ['b', decision.challenger?.serving],
  ];
  const listed: ListedModel[] = repositoryEntries.map((entry) => ({ ...entry, arms: [] }));
  for (const [arm, serving] of arms) {
    if (!serving) continue;
    const entry = listed.find((model) => model.dir === serving.modelDir);
    if (!entry)
      listed.push({ name: null, version: null, dir: serving.modelDir, modelVersion: serving.modelVersion, modelSha256: serving.modelSha256, arms: [arm] });
    else entry.arms.push(arm);
  }
  return listed;
}

function describe(deps: AdminDeps) {
  const { decision, swapper } = deps;
  const repository = repositoryOf(decision.config);
  let repositoryEntries: RepositoryEntry[] = [];
  let repositoryError: string | null = null;
  try {
    repositoryEntries = repository ? listRepository(repository) : [];
  } catch (error) {
    // The serving models are still worth describing when the repository went away under them.
    repositoryError = (error as Error).message;
  }
  const about = (serving: Serving | undefined) =>
    serving ? { version: serving.modelVersion, sha256: serving.modelSha256, dir: serving.modelDir, ...serving.engine.stats() } : null;
  return {
    serving: about(decision.serving),
    challenger: decision.challenger ? { ...about(decision.challenger.serving), share: decision.challenger.share } : null,
    loading: swapper.loadingDir ?? null,
    repository: repository ?? null,
    repositoryError,
    models: modelsOf(deps, repositoryEntries),
    // Most recent last: what a rollback would serve next.
    history: swapper.history.entries,
  };
}

function endAbTest({ exchange, deps }: AdminCall): void {
  if (!deps.swapper.removeChallenger()) return exchange.fail(new RequestError(404, 'not_found', 'no A/B test is running'));
  deps.log.info('A/B test ended');
  sendJson(exchange, describe(deps));
}

interface SwapRequest {
  dir: string;
  arm: 'a' | 'b';
  share: number;
}

/** The directory a swap names: `dir` itself, or `{name, version}` (no version: the newest) in the model repository. */
function swapDirOf(deps: AdminDeps, { dir, name, version }: { dir?: unknown; name?: unknown; version?: unknown }): string {
  if (name === undefined && version === undefined) {
    if (typeof dir !== 'string' || dir.length === 0)
      throw new RequestError(422, 'invalid_request', '"dir" must name a model directory, or "name" and "version" one in the model repository');
    return dir;
  }
  if (dir !== undefined) throw new RequestError(422, 'invalid_request', 'name either "dir" or "name" and "version", not both');
  if (typeof name !== 'string' || (version !== undefined && typeof version !== 'string'))
    throw new RequestError(422, 'invalid_request', '"name" and "version" must be strings');
  const repository = repositoryOf(deps.decision.config);
  if (!repository) throw new RequestError(422, 'invalid_request', 'no model repository is configured (modelRepository); name a "dir"');
  try {
    return versionDir(repository, name, version);
  } catch (error) {
    throw error instanceof ModelDirError ? new RequestError(404, 'not_found', error.message) : error;
  }
}

function swapRequestOf(deps: AdminDeps, json: unknown): SwapRequest {
  const fields = (json ?? {}) as { dir?: unknown; name?: unknown; version?: unknown; arm?: unknown; share?: unknown };
  const { arm = 'a', share = 0.1 } = fields;
  const dir = swapDirOf(deps, fields);
  if (arm !== 'a' && arm !== 'b') throw new RequestError(422, 'invalid_request', '"arm" must be "a" or "b"');
  if (typeof share !== 'number' || !(share > 0 && share < 1)) throw new RequestError(422, 'invalid_request', '"share" must be between 0 and 1');
  return { dir, arm, share };
}

/** What a failed swap answers: the serving models keep serving either way. */
function swapRefusal(error: Error): RequestError {
  if (error instanceof SwapInProgressError || error instanceof NothingToRollBackError) return new RequestError(409, 'conflict', error.message);
  return new RequestError(422, 'invalid_model', error instanceof ModelDirError ? error.message : `cannot load model: ${error.message}`);
}

function swapModel(call: AdminCall): void {
  const { exchange, deps } = call;
  readJson(call, (json) => {
    const { dir, arm, share } = swapRequestOf(deps, json);
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

function rollBack({ exchange, deps }: AdminCall): void {
  deps.log.info('model rollback requested', { to: deps.swapper.history.latest?.dir });
  deps.swapper.rollBack().then(
    (serving) => {
      deps.log.info('model rolled back', { version: serving.modelVersion, dir: serving.modelDir });
      sendJson(exchange, describe(deps));
    },
    (error: Error) => {
      deps.log.warn('model rollback failed', { error: error.message });
      exchange.fail(swapRefusal(error));
    },
  );
}

export const modelRoutes: readonly AdminRoute[] = [
  { method: 'get', pattern: '/v1/admin/models', handle: ({ exchange, deps }) => sendJson(exchange, describe(deps)) },
  { method: 'post', pattern: '/v1/admin/models', handle: swapModel },
  { method: 'post', pattern: '/v1/admin/models/rollback', handle: rollBack },
  { method: 'del', pattern: '/v1/admin/models/b', handle: endAbTest },
];
