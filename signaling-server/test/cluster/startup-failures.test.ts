// A node that cannot start says why in one line on stderr that names the variable to fix, and
// exits 1; the JSON log carries the same line (with the stack as a field, not as the headline).
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, freePort, killAllNodes, startNodeExpectingFailure, testDatabaseUrl } from '../support/cluster.js';

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
