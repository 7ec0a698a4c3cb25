// A model repository: `<repository>/<name>/<version>/`, each version a model directory written by
// train/. Versions order by natural string order (v2 before v10); the newest is the last.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import type { Config } from '../config';
import { projectRoot } from '../paths';
import { type Manifest, ModelDirError } from './model_dir';

export interface RepositoryEntry {
  name: string;
  version: string;
  dir: string;
  /** The manifest's own version string (what responses and metrics call the model); null when it cannot be read. */
  modelVersion: string | null;
  /** SHA-256 of model.pt as the manifest lists it; null when it cannot be read. */
  modelSha256: string | null;
}

const naturalOrder = new Intl.Collator('en', { numeric: true });

/** A path segment that cannot climb out of the repository. */
const plainSegment = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function subdirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && plainSegment.test(entry.name))
      .map((entry) => entry.name)
      .sort(naturalOrder.compare);
  } catch (error) {
    throw new ModelDirError(`cannot read model repository ${dir}: ${(error as Error).message}`);
  }
}

/** The repository's absolute path, or undefined when none is configured. */
export function repositoryOf(config: Config): string | undefined {
  return config.modelRepository === '' ? undefined : path.resolve(projectRoot, config.modelRepository);
}

/** The directory of `name`'s `version` in the repository, or of its newest version when `version` is omitted. */
export function versionDir(repository: string, name: string, version?: string): string {
  if (!plainSegment.test(name) || (version !== undefined && !plainSegment.test(version)))
    throw new ModelDirError(`model names and versions are plain path segments (got ${JSON.stringify(version === undefined ? name : `${name}/${version}`)})`);
  const versions = subdirectories(path.join(repository, name));
  const chosen = version ?? versions.at(-1);
  if (chosen === undefined || !versions.includes(chosen))
    throw new ModelDirError(`model repository ${repository} has no ${version === undefined ? `version of ${name}` : `${name}/${version}`}`);
  return path.join(repository, name, chosen);
}

/** The model directory the daemon starts with: `modelDir` itself, or with a repository, `<name>` (its newest version) or `<name>/<version>` in it. */
export function startupModelDir(config: Config): string {
  const repository = repositoryOf(config);
  if (!repository) return path.resolve(projectRoot, config.modelDir);
  const [name = '', version, ...rest] = config.modelDir.split('/');
  if (rest.length > 0) throw new ModelDirError(`with a model repository, modelDir names <name> or <name>/<version> (got ${JSON.stringify(config.modelDir)})`);
  return versionDir(repository, name, version);
}

/** Every name and version in the repository, with what its manifest says (a version whose manifest is unreadable is listed with nulls). */
export function listRepository(repository: string): RepositoryEntry[] {
  return subdirectories(repository).flatMap((name) =>
    subdirectories(path.join(repository, name)).map((version) => {
      const dir = path.join(repository, name, version);
      let manifest: Partial<Manifest> | undefined;
      try {
        manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Partial<Manifest>;
      } catch {
        manifest = undefined;
      }
      const sha256 = manifest?.files?.['model.pt']?.sha256;
      return {
        name,
        version,
        dir,
        modelVersion: typeof manifest?.version === 'string' ? manifest.version : null,
        modelSha256: typeof sha256 === 'string' ? sha256 : null,
      };
    }),
  );
}
