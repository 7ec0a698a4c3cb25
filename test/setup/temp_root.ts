// Every temporary directory the tests and their daemons make (data directories, model copies,
// Redis and ledger files) goes under one root that is removed when the run ends, so a run leaves
// nothing behind in the system's temporary directory. Workers and daemons inherit TMPDIR.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(path.join(tmpdir(), 'adserve-tests-'));
  process.env.TMPDIR = root;
  return () => rmSync(root, { recursive: true, force: true });
}
