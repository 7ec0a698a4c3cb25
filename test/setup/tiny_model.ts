// Trains the tiny model once per change of train/ (a few seconds) for the tests that need a real
// model directory. Its path is build/test-models/tiny.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { projectRoot } from '../../src/paths';

export const tinyModelDir = path.join(projectRoot, 'build', 'test-models', 'tiny');
/** The DLRM scorer over the tiny model's towers (a second or two more). */
export const tinyDlrmModelDir = path.join(projectRoot, 'build', 'test-models', 'tiny-dlrm');

export default function setup(): void {
  const trainDir = path.join(projectRoot, 'train');
  const digest = createHash('sha256');
  for (const name of readdirSync(trainDir)
    .filter((file) => file.endsWith('.py'))
    .sort())
    digest.update(name).update(readFileSync(path.join(trainDir, name)));
  const want = digest.digest('hex');
  trainOnce(tinyModelDir, want, []);
  trainOnce(tinyDlrmModelDir, want, ['--scorer', 'dlrm', '--towers', tinyModelDir]);
}

function trainOnce(dir: string, want: string, extraArguments: string[]): void {
  const stamp = path.join(dir, '.stamp');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  rmSync(dir, { recursive: true, force: true });
  execFileSync('/usr/bin/python3', ['-m', 'train', '--preset', 'tiny', '--out', dir, '--threads', '1', ...extraArguments], { cwd: projectRoot, stdio: 'pipe' });
  writeFileSync(stamp, want);
}
