// What a person sees on a first run: one line on stderr saying where the demo is and what to set
// next (the log stays JSON on stdout), and a second `npm run build` that rebuilds nothing.
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, killAllNodes, startNode, testRedisUrl, uniqueName } from '../support/cluster.js';
import { eventually } from '../support/eventually.js';
import { ADMIN_API_KEYS } from '../support/operator-api.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

afterAll(killAllNodes);

const firstLine = (node: { stderr(): string }) =>
  eventually(
    'the start-up line',
    5000,
    async () => node.stderr(),
    (text) => text.includes('\n'),
    20,
  );

describe('the start-up line', () => {
  it('says where the demo is and how to turn the operator API on, while stdout stays JSON', async () => {
    const node = await startNode({
      databaseUrl: await createTestDatabase(),
      redisUrl: testRedisUrl(),
      redisPrefix: `${uniqueName('t')}:`,
    });
    expect(await firstLine(node)).toBe(
      `signaling node ${node.id}: demo at http://127.0.0.1:${node.port}/ — operator API off: set ADMIN_API_KEYS to write:<a key of 16+ characters> to turn it on; logs are JSON on stdout\n`,
    );
    expect(node.logs.filter((l) => 'raw' in l)).toEqual([]);
  });

  it('with ADMIN_API_KEYS, says where the API is and what signalctl needs', async () => {
    const node = await startNode({
      databaseUrl: await createTestDatabase(),
      redisUrl: testRedisUrl(),
      redisPrefix: `${uniqueName('t')}:`,
      env: { ADMIN_API_KEYS },
    });
    const base = `http://127.0.0.1:${node.port}`;
    expect(await firstLine(node)).toContain(
      `— operator API at ${base}/v1 (signalctl: SIGNALCTL_URL=${base} SIGNALCTL_KEY=<a key of ADMIN_API_KEYS>); logs`,
    );
  });
});

describe('npm run build', () => {
  it('rebuilds nothing when no source changed', async () => {
    const outputs = ['signaling-server/dist/main.js', 'client/dist/index.js'].map((f) => `${ROOT}${f}`);
    await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: ROOT, timeout: 120_000 });
    const before = outputs.map((f) => statSync(f).mtimeMs);
    await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: ROOT, timeout: 120_000 });
    expect(outputs.map((f) => statSync(f).mtimeMs)).toEqual(before);
  }, 240_000);
});
