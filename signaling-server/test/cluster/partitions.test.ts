// Partitions without a FIN or an RST: a black-hole proxy (test/support/black-hole-proxy.ts) sits
// between one node and Redis or Postgres and stops forwarding, or forgets the node's flows, the way
// a NAT, a load balancer's idle timeout or a paused VM does. The node must notice within seconds,
// say so on /readyz and /metrics, and keep answering its probes.
import { afterEach, expect, it } from 'vitest';
import { startBlackHoleProxy, type BlackHoleProxy } from '../support/black-hole-proxy.js';
import {
  createTestDatabase,
  killAllNodes,
  metric,
  startNode,
  testRedisUrl,
  uniqueName,
  type RunningNode,
} from '../support/cluster.js';
import { eventually } from '../support/eventually.js';

const proxies: BlackHoleProxy[] = [];

afterEach(async () => {
  await killAllNodes();
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

/** A proxy in front of the server of `url`, and `url` rewritten to go through it. */
async function throughProxy(url: string): Promise<{ url: string; proxy: BlackHoleProxy }> {
  const target = new URL(url);
  const proxy = await startBlackHoleProxy({ host: target.hostname, port: Number(target.port) });
  proxies.push(proxy);
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(proxy.port);
  return { url: proxied.toString(), proxy };
}

/** /readyz's status and how long it took to answer (0: no answer within 3 s). */
async function readyz(node: RunningNode): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  try {
    const res = await fetch(`${node.httpUrl}/readyz`, { signal: AbortSignal.timeout(3000) });
    await res.text();
    return { status: res.status, ms: Date.now() - started };
  } catch {
    return { status: 0, ms: Date.now() - started };
  }
}

it('a node whose Redis flows are forgotten is unready and reports the bus down within 5 s, then ready again on new connections', async () => {
  const { url, proxy } = await throughProxy(testRedisUrl());
  const node = await startNode({ databaseUrl: await createTestDatabase(), redisUrl: url, redisPrefix: `${uniqueName('t')}:` });
  expect((await readyz(node)).status).toBe(200);
  proxy.setMode('hold');
  const cut = Date.now();
  await eventually(
    'signaling_bus_up 0',
    5000,
    () => metric(node, 'signaling_bus_up'),
    (v) => v === 0,
  );
  await eventually(
    '/readyz 503',
    5000,
    () => readyz(node),
    (r) => r.status === 503,
  );
  expect(Date.now() - cut).toBeLessThanOrEqual(5000);
  // The flows are forgotten: the held ones stay dead for good, new connections pass.
  proxy.setMode('forget');
  await eventually(
    '/readyz 200 again',
    10_000,
    () => readyz(node),
    (r) => r.status === 200,
  );
  expect(await metric(node, 'signaling_bus_up')).toBe(1);
  const silent = await metric(node, 'signaling_bus_silent_connections_total{connection="sub"}');
  expect(silent).toBeGreaterThanOrEqual(1);
}, 30_000);

it('/readyz and /healthz answer within a second while Postgres hangs', async () => {
  const { url, proxy } = await throughProxy(await createTestDatabase());
  const node = await startNode({ databaseUrl: url, redisUrl: testRedisUrl(), redisPrefix: `${uniqueName('t')}:` });
  expect((await readyz(node)).status).toBe(200);
  proxy.setMode('hold');
  for (let i = 0; i < 5; i++) {
    const ready = await readyz(node);
    expect(ready.status).toBe(503);
    expect(ready.ms).toBeLessThan(1000);
    const started = Date.now();
    const health = await fetch(`${node.httpUrl}/healthz`, { signal: AbortSignal.timeout(3000) });
    expect(health.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(1000);
  }
  proxy.setMode('pass');
  await eventually(
    '/readyz 200 after the heal',
    10_000,
    () => readyz(node),
    (r) => r.status === 200,
  );
}, 30_000);
