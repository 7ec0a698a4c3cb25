import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, rename } from 'node:fs/promises';
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

/** writeDurably for content too large to hold or write in one go: `write` fills the file, and the event loop is never blocked on disk. */
export async function replaceDurably(dir: string, name: string, write: (file: FileHandle) => Promise<void>): Promise<void> {
  const temporary = path.join(dir, `${name}.tmp`);
  const file = await open(temporary, 'w');
  try {
    await write(file);
    await file.datasync();
  } finally {
    await file.close();
  }
  await rename(temporary, path.join(dir, name));
  const directory = await open(dir, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
