import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Writes a file so that after a crash it holds either its old content or all of the new. */
export function writeDurably(dir: string, name: string, content: string): void {
  const temporary = path.join(dir, `${name}.tmp`);
  writeFileSync(temporary, content);
  const fd = openSync(temporary, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temporary, path.join(dir, name));
  const dirFd = openSync(dir, 'r');
  fsyncSync(dirFd);
  closeSync(dirFd);
}
