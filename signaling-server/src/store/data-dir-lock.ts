// One embedded node per DATA_DIR: PGlite does not lock its directory, and two processes writing
// one database corrupt it. The lock is a file holding the owner's pid, created exclusively; a lock
// whose process is gone (a crash, a SIGKILL) is taken over.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirInUseError extends Error {}

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dir: string): DataDirLock {
  const path = join(dir, 'node.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      return { release: () => releaseIfOurs(path) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const owner = readOwner(path);
    if (owner !== null && owner !== process.pid && isAlive(owner)) {
      throw new DataDirInUseError(
        `${dir} is in use by another embedded node (pid ${owner}): give each node its own DATA_DIR, or set DATABASE_URL to share a Postgres`,
      );
    }
    // Its owner is gone (or was an earlier run with our pid, as pid 1 in a restarted container).
    unlinkSync(path);
  }
}

function readOwner(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseIfOurs(path: string): void {
  if (readOwner(path) === process.pid) unlinkSync(path);
}
