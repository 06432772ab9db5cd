// `npm ci && npm start` on a fresh machine: no DATABASE_URL, no REDIS_URL. The node runs on the
// embedded database and the in-process bus, says so, and keeps room state across restarts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { killAllNodes, startNode } from '../support/cluster.js';
import { TestClient } from '../support/test-client.js';

const dataDir = mkdtempSync(join(tmpdir(), 'signaling-embedded-'));

afterAll(async () => {
  await killAllNodes();
  rmSync(dataDir, { recursive: true, force: true });
});

it('a single node with nothing configured serves a room, warns it cannot scale out, and keeps state across a restart', async () => {
  // The first start creates the embedded database (initdb in WebAssembly): it takes a while.
  const node = await startNode({ env: { DATA_DIR: dataDir }, startTimeoutMs: 90_000 });
  const warning = node.logs.find((l) => String(l.msg).startsWith('running embedded'));
  expect(warning).toMatchObject({ level: 40, embeddedDatabase: true, inProcessBus: true });

  const alice = await TestClient.connect(node.url);
  const bob = await TestClient.connect(node.url);
  const aj = await alice.join('solo');
  await bob.join('solo');
  await alice.request({ type: 'state', room: 'solo', data: { note: 'embedded' }, version: 0 });
  expect(await bob.waitForType('state')).toMatchObject({ version: 1, data: { note: 'embedded' }, from: aj.self.id });
  const bj = bob.received.find((m) => m.type === 'joined')!;
  await alice.request({ type: 'signal', room: 'solo', to: (bj as { self: { id: string } }).self.id, data: 'hi' });
  expect(await bob.waitForType('signal')).toMatchObject({ data: 'hi', from: aj.self.id });
  alice.drop();
  bob.drop();
  expect(await node.stop('SIGTERM')).toBe(0);

  const again = await startNode({ env: { DATA_DIR: dataDir }, startTimeoutMs: 60_000 });
  const carol = await TestClient.connect(again.url);
  expect((await carol.join('solo')).state).toEqual({ version: 1, data: { note: 'embedded' } });
  carol.drop();
  for (const c of [alice, bob, carol]) expect(c.violations).toEqual([]);
}, 180_000);
