import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

// The same module runs from src/ (tests) and from dist/src/ (the daemon), so the project root is
// found by walking up to our own package.json rather than by a fixed number of '..'.
function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'adserve') return dir;
    if (path.dirname(dir) === dir) throw new Error(`adserve's package.json not found above ${start}`);
  }
}

export const projectRoot = findProjectRoot(__dirname);
export const addonPath = path.join(projectRoot, 'build', 'native', 'Release', 'adserve.node');
