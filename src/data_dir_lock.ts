// One process owns a data directory: its spend ledger and catalog edits are written by that process
// alone, and a second daemon on the same directory would interleave ledger segments and snapshots,
// losing or double-counting spend. The lock is a file naming its owner (pid and the kernel's start
// time of that pid, so a pid reused by another process after a reboot is not taken for the owner),
// created exclusively; a lock left by a process that is gone (kill -9, a crash) is taken over, so a
// restart never needs a hand.
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

export class DataDirLockedError extends Error {}

const lockName = 'adserve.lock';

/** The kernel's start time of a process (clock ticks since boot), or undefined where /proc cannot say. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name, which may itself hold spaces; start time is field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function isAlive(pid: number, startTime: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = startTimeOf(pid);
  return now === undefined || startTime === undefined || now === startTime;
}

/** Takes the lock of `dir` (created if missing) for this process until it exits; throws DataDirLockedError while another live process holds it. */
export function lockDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, lockName);
  const owner = `${process.pid} ${startTimeOf(process.pid) ?? '-'}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, owner);
      closeSync(fd);
      process.once('exit', () => {
        try {
          if (readFileSync(file, 'utf8') === owner) unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder: string[];
    try {
      holder = readFileSync(file, 'utf8').trim().split(' ');
    } catch {
      continue; // released meanwhile
    }
    const pid = Number(holder[0]);
    const startTime = holder[1] === '-' ? undefined : holder[1];
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid, startTime)) {
      throw new DataDirLockedError(`data directory ${dir} is in use by process ${pid} (${file}): one daemon per data directory`);
    }
    try {
      unlinkSync(file);
    } catch {
      // Taken over or released by another process meanwhile: the next attempt sees which.
    }
  }
  throw new DataDirLockedError(`could not take the lock ${file}`);
}
