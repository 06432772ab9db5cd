// A node that cannot start says why in one line on stderr that names the variable to fix, and
// exits 1; the JSON log carries the same line (with the stack as a field, not as the headline).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  freePort,
  killAllNodes,
  startCluster,
  startNode,
  startNodeExpectingFailure,
  testDatabaseUrl,
} from '../support/cluster.js';

afterAll(killAllNodes);

/** The one line the node printed, also as the `fatal` log line. */
function expectOneLine(run: { code: number | null; stderr: string; logs: Record<string, unknown>[] }): string {
  expect(run.code).toBe(1);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  expect(lines, run.stderr).toHaveLength(1);
  const line = lines[0]!;
  expect(run.logs.find((l) => l.level === 60)).toMatchObject({ msg: line });
  return line;
}

describe('a node that cannot reach what it is configured with', () => {
  it('names DATABASE_URL when nothing listens at the database address, without the password', async () => {
    const port = await freePort();
    const run = await startNodeExpectingFailure({ databaseUrl: `postgres://postgres:hunter2@127.0.0.1:${port}/signaling` });
    const line = expectOneLine(run);
    expect(line).toMatch(
      new RegExp(`^cannot start: DATABASE_URL: cannot use the database at 127\\.0\\.0\\.1:${port}/signaling: .*ECONNREFUSED`),
    );
    expect(run.stderr + JSON.stringify(run.logs)).not.toContain('hunter2');
  });

  it('names DATABASE_URL when the database does not exist', async () => {
    const url = new URL(testDatabaseUrl());
    url.pathname = '/no_such_database_here';
    const line = expectOneLine(await startNodeExpectingFailure({ databaseUrl: url.toString() }));
    expect(line).toMatch(/^cannot start: DATABASE_URL: cannot use the database at .*\/no_such_database_here: .*does not exist/);
  });

  it('names REDIS_URL when nothing listens at the Redis address', async () => {
    const port = await freePort();
    const run = await startNodeExpectingFailure({
      databaseUrl: await createTestDatabase(),
      redisUrl: `redis://127.0.0.1:${port}`,
    });
    expect(expectOneLine(run)).toMatch(
      new RegExp(`^cannot start: REDIS_URL: cannot connect to Redis at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
    );
  });
});

describe('a node that would share what must be its own', () => {
  it('refuses a port another node listens on, naming PORT, and leaves the first node serving alone', async () => {
    const port = await freePort();
    const { nodes, options } = await startCluster(1, { port });
    const run = await startNodeExpectingFailure({ ...options, port });
    expect(expectOneLine(run)).toBe(
      `cannot start: PORT: cannot listen on 127.0.0.1:${port}: the port is taken (another node or program listens there): choose another PORT`,
    );
    expect((await fetch(`${nodes[0]!.httpUrl}/healthz`)).status).toBe(200);
  });

  it('of two nodes started together on one port, only one listens: the other exits naming PORT', async () => {
    const port = await freePort();
    const { options } = await startCluster(1);
    // Both pass the early check; the listen itself, with the port to itself, decides.
    const [x, y] = await Promise.allSettled([startNode({ ...options, port }), startNode({ ...options, port })]);
    const started = [x, y].filter((r) => r.status === 'fulfilled');
    const refused = [x, y].filter((r) => r.status === 'rejected');
    expect(started).toHaveLength(1);
    expect(String(refused[0]?.reason)).toContain(`cannot start: PORT: cannot listen on 127.0.0.1:${port}: the port is taken`);
  });

  it('refuses a DATA_DIR another embedded node uses, naming DATA_DIR, and takes it over once that node is gone', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'signaling-shared-dir-'));
    try {
      const first = await startNode({ env: { DATA_DIR: dataDir }, startTimeoutMs: 90_000 });
      const run = await startNodeExpectingFailure({ env: { DATA_DIR: dataDir } });
      expect(expectOneLine(run)).toBe(
        `cannot start: DATA_DIR: cannot open the embedded database: ${dataDir} is in use by another embedded node (pid ${first.process.pid}): give each node its own DATA_DIR, or set DATABASE_URL to share a Postgres`,
      );
      // A node killed without a chance to clean up leaves its lock behind: the next one takes it.
      await first.kill();
      const next = await startNode({ env: { DATA_DIR: dataDir }, startTimeoutMs: 60_000 });
      await next.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
