// Shared by the benchmark commands: machine and commit stamps, and writing a report as JSON plus
// Markdown into bench/results/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { projectRoot } from '../src/paths';

export function machineInfo() {
  return {
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** HEAD's short hash, marked when tracked files other than Markdown and bench/results differ from it: a report must not credit a commit with code it does not hold. */
export function gitCommit(): string {
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: projectRoot, encoding: 'utf8' }).trim();
  const changed = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/results', ':!*.md'], {
    cwd: projectRoot,
    encoding: 'utf8',
  });
  return changed.trim() === '' ? head : `${head} with uncommitted changes`;
}

/** Writes bench/results/<kind>-<date>.json and .md and prints the Markdown. */
export function writeReport(kind: string, date: string, report: object, markdown: string): void {
  const dir = path.join(projectRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = path.join(dir, `${kind}-${date.replace(/[:.]/g, '-')}`);
  writeFileSync(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${stem}.md`, markdown);
  process.stdout.write(`${markdown}\nwrote ${stem}.json and .md\n`);
}

let runRoot: string | undefined;

/** A fresh directory for one run's data (daemon data directories, model copies), removed when the bench process exits. */
export function benchTempDir(prefix: string): string {
  if (!runRoot) {
    const root = mkdtempSync(path.join(os.tmpdir(), 'adserve-bench-'));
    runRoot = root;
    process.once('exit', () => rmSync(root, { recursive: true, force: true }));
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  }
  return mkdtempSync(path.join(runRoot, prefix));
}

export function runBench(main: () => Promise<void>): void {
  main().catch((error: Error) => {
    process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}

/** The middle value; for an even count the mean of the two middle ones (so two rounds give their mean, not the larger). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
