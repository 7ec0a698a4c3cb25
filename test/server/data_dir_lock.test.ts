import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { expect, it } from 'vitest';

import { startDaemon } from '../../bench/daemon';
import { lockDataDir } from '../../src/data_dir_lock';
import { baseEnv } from '../helpers/events';

it('refuses a second daemon on a data directory in use, and takes over the lock a killed one left', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-lock-'));
  const first = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: dataDir });
  try {
    // A second daemon that did start is stopped again, so a failing run leaves no process behind.
    const second = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: dataDir }).then(
      async (daemon) => `started (exit ${await daemon.stop()})`,
      (error: Error) => error.message,
    );
    expect(second).toMatch(new RegExp(`data directory ${dataDir} is in use by process ${first.child.pid}`));
    // The refused daemon left the owner's lock alone.
    expect(readFileSync(path.join(dataDir, 'adserve.lock'), 'utf8')).toMatch(new RegExp(`^${first.child.pid} `));
  } finally {
    first.child.kill('SIGKILL');
    await first.stop();
  }
  const restarted = await startDaemon({ ...baseEnv, ADSERVE_DATA_DIR: dataDir });
  expect((await fetch(`${restarted.url}/livez`)).status).toBe(200);
  await restarted.stop();
  // A clean stop releases it.
  expect(() => readFileSync(path.join(dataDir, 'adserve.lock'))).toThrow(/ENOENT/);
});

it('takes over a lock whose pid now names another process started later', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'adserve-lock-'));
  // This process's parent is alive, but its start time differs from the one the lock records.
  writeFileSync(path.join(dataDir, 'adserve.lock'), `${process.ppid} 1\n`);
  lockDataDir(dataDir);
  expect(readFileSync(path.join(dataDir, 'adserve.lock'), 'utf8').split(' ')[0]).toBe(String(process.pid));
  // A dead pid is taken over as well.
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  const other = mkdtempSync(path.join(tmpdir(), 'adserve-lock-'));
  writeFileSync(path.join(other, 'adserve.lock'), `${gone} -\n`);
  lockDataDir(other);
  expect(readFileSync(path.join(other, 'adserve.lock'), 'utf8').split(' ')[0]).toBe(String(process.pid));
});
