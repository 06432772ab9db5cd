// A private Postgres 15 cluster for tests that stop and restart the database under running nodes:
// initdb into a temporary directory, trust auth, 127.0.0.1 on a free port. Never the shared server.
// initdb and postgres refuse to run as root, so they run as the `postgres` OS user.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './throwaway-redis.js';

const BIN = '/usr/lib/postgresql/15/bin';
const OS_USER = 'postgres';
const run = promisify(execFile);

export interface ThrowawayPostgres {
  port: number;
  databaseUrl: string;
  /** Starts the server again on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  /** `pg_ctl stop -m immediate`: connections die at once, as in a crash. */
  stop(): Promise<void>;
  /** Stops the server if it runs and deletes its directory. */
  remove(): Promise<void>;
}

export async function startThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const uid = Number(execFileSync('id', ['-u', OS_USER]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', OS_USER]).toString().trim());
  const dir = mkdtempSync(join(tmpdir(), 'throwaway-pg-'));
  chownSync(dir, uid, gid);
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const port = await freePort();
  // cwd: the postgres user may not be allowed into the test's working directory.
  const asPostgres = (bin: string, args: string[], timeoutMs = 60_000) =>
    run('runuser', ['-u', OS_USER, '--', join(BIN, bin), ...args], { cwd: dir, timeout: timeoutMs });
  const withLog = async (what: string, work: Promise<unknown>) => {
    try {
      await work;
    } catch (err) {
      let log = '';
      try {
        log = readFileSync(logFile, 'utf8');
      } catch {}
      throw new Error(`${what} failed: ${String(err)}\n${log}`);
    }
  };

  await withLog(
    'initdb',
    asPostgres('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C']),
  );
  let isRunning = false;
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    // Skipping fsync is safe here: an immediate stop kills Postgres, not the OS, so written WAL
    // survives. (synchronous_commit=off would not be: commits still in WAL buffers would be lost.)
    '-c fsync=off',
    '-c full_page_writes=off',
  ].join(' ');

  const start = async () => {
    await withLog(
      'pg_ctl start',
      asPostgres('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', '30', 'start']),
    );
    isRunning = true;
  };
  const stop = async () => {
    await withLog('pg_ctl stop', asPostgres('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop']));
    isRunning = false;
  };
  const remove = async () => {
    if (isRunning) await stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { port, databaseUrl: `postgres://postgres@127.0.0.1:${port}/postgres`, start, stop, remove };
}
