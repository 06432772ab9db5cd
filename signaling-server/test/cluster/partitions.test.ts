// Partitions without a FIN or an RST: a black-hole proxy (test/support/black-hole-proxy.ts) sits
// between one node and Redis or Postgres and stops forwarding, or forgets the node's flows, the way
// a NAT, a load balancer's idle timeout or a paused VM does. The node must notice within seconds,
// say so on /readyz and /metrics, and keep answering its probes.
import { afterEach, expect, it } from 'vitest';
import { Member, untilAllArrived, verify } from '../support/acked-signals.js';
import { startBlackHoleProxy, type BlackHoleProxy } from '../support/black-hole-proxy.js';
import { ClientTracker, newRoom } from '../support/clients.js';
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
import type { TestClient } from '../support/test-client.js';

const proxies: BlackHoleProxy[] = [];
const clients = new ClientTracker();

afterEach(async () => {
  expect(clients.dropAll()).toEqual([]);
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

/** Sends `msg` and expects `unavailable` within a second. */
async function refusedAtOnce(client: TestClient, msg: Record<string, unknown>): Promise<void> {
  const asked = Date.now();
  expect(await client.request(msg, 5000)).toMatchObject({ type: 'error', code: 'unavailable' });
  expect(Date.now() - asked).toBeLessThan(1000);
}

/** Rooms of three, member j of room r on node j, signalling every peer 20 times a second. */
async function signallingRooms(nodes: RunningNode[], rooms: number) {
  const members: Member[] = [];
  for (let r = 0; r < rooms; r++) {
    const room = newRoom('part');
    for (const node of nodes) {
      const m = new Member(room, clients);
      await m.connect(node);
      members.push(m);
    }
  }
  // The peer-joined of those who joined later lands before churn counts.
  const later = (i: number) => nodes.length - 1 - (i % nodes.length);
  await eventually(
    'every member sees its peers join',
    5000,
    async () => members.every((m, i) => m.churn.length >= later(i)),
    Boolean,
  );
  for (const m of members) m.churn.length = 0;
  const peersOf = (m: Member) => members.filter((o) => o.room === m.room && o !== m);
  const timer = setInterval(() => members.forEach((m) => m.signal(peersOf(m))), 50);
  return { members, stop: () => clearInterval(timer) };
}

it('a node cut off from Redis for 10 s, its flows forgotten: unready within 5 s, its clients resume elsewhere with their ids, every acked signal arrives, nobody sees peer-left', async () => {
  // Heartbeats each second: the other nodes say within a second of the cut that they still reach
  // Redis, which is what lets the cut-off node send its clients to them (bus-outage.ts).
  const env = { RESUME_GRACE_MS: '20000', NODE_HEARTBEAT_MS: '1000' };
  const common = { databaseUrl: await createTestDatabase(), redisPrefix: `${uniqueName('pt')}:`, env };
  const { url, proxy } = await throughProxy(testRedisUrl());
  const cutOff = await startNode({ ...common, redisUrl: url });
  const others = await Promise.all([0, 1].map(() => startNode({ ...common, redisUrl: testRedisUrl() })));
  const nodes = [cutOff, ...others];
  const { members, stop } = await signallingRooms(nodes, 3);
  const victims = members.filter((m) => m.client.welcome.node === cutOff.id);
  const ids = victims.map((m) => m.id);
  // Each is told to reconnect, and does, to the node after it: with the same id (connect() checks).
  const toldAt: number[] = [];
  const moved = victims.map(async (m, i) => {
    const told = await m.client.waitForType('reconnect', () => true, 15_000);
    toldAt.push(Date.now());
    await m.client.closed;
    await new Promise((resolve) => setTimeout(resolve, told.retryAfterMs));
    await m.connect(others[i % 2]!);
  });
  await eventually('signals flowing', 5000, async () => members.every((m) => [...m.acked.values()].flat().length > 10), Boolean);

  proxy.setMode('hold');
  const cut = Date.now();
  await eventually(
    '/readyz 503 on the cut-off node',
    5000,
    () => readyz(cutOff),
    (r) => r.status === 503,
  );
  expect(Date.now() - cut).toBeLessThanOrEqual(5000);
  expect(await metric(cutOff, 'signaling_bus_up')).toBe(0);
  // Told to go while the cut lasts, once the bus has been down for BUS_DOWN_RECONNECT_MS.
  const cutLeft = () => Math.max(0, cut + 10_000 - Date.now());
  await eventually(
    'every client told to reconnect',
    cutLeft(),
    async () => toldAt.length,
    (n) => n === victims.length,
  );
  expect(Math.min(...toldAt) - cut).toBeGreaterThanOrEqual(5000);
  await new Promise((resolve) => setTimeout(resolve, cutLeft()));
  // The network forgets the node's flows: the old sockets stay dead, new ones pass.
  proxy.setMode('forget');
  await Promise.all(moved);
  expect(victims.map((m) => m.id)).toEqual(ids);
  await Promise.all(moved);
  expect(victims.map((m) => m.id)).toEqual(ids);
  await eventually(
    '/readyz 200 on the cut-off node again',
    10_000,
    () => readyz(cutOff),
    (r) => r.status === 200,
  );
  stop();
  await untilAllArrived(members);
  const { broken } = verify(members);
  expect(broken).toEqual([]);
  expect(members.flatMap((m) => m.churn)).toEqual([]);
  expect(await metric(cutOff, 'signaling_bus_away_moves_total')).toBe(1);
  expect(members.reduce((n, m) => n + [...m.acked.values()].flat().length, 0)).toBeGreaterThan(1000);
}, 60_000);

it('a node cut off from Postgres alone for 30 s keeps its participants: nobody sees peer-left, nothing acked is lost, and afterwards every node sees the same rooms', async () => {
  // A 30 s cut, as long as a Postgres failover takes, on the default 5 s heartbeat: three times
  // what the reaper would take for a dead node (two missed beats) without its beats through Redis.
  const env = { RESUME_GRACE_MS: '20000', DB_TIMEOUT_MS: '3000' };
  const databaseUrl = await createTestDatabase();
  const common = { redisUrl: testRedisUrl(), redisPrefix: `${uniqueName('pg')}:`, env };
  const first = await startNode({ ...common, databaseUrl });
  const { url, proxy } = await throughProxy(databaseUrl);
  const cutOff = await startNode({ ...common, databaseUrl: url });
  const third = await startNode({ ...common, databaseUrl });
  const nodes = [cutOff, first, third];
  const { members, stop } = await signallingRooms(nodes, 3);
  const victims = members.filter((m) => m.client.welcome.node === cutOff.id);
  const joiner = await clients.connect(cutOff);

  proxy.setMode('hold');
  const cut = Date.now();
  // A join cannot be recorded: it is refused at once, even right after the cut, before any
  // heartbeat of the node has had time to fail.
  await refusedAtOnce(joiner, { type: 'join', room: members[0]!.room });
  await eventually(
    '/readyz 503 on the cut-off node',
    5000,
    () => readyz(cutOff),
    (r) => r.status === 503,
  );
  // A leave too, once the node's heartbeat has failed as well: the member stays, its peers see nothing.
  await eventually(
    'a failed heartbeat on the cut-off node',
    12_000,
    async () => cutOff.logs.some((l) => l.msg === 'heartbeat failed' && Number(l.time) > cut),
    Boolean,
  );
  expect(await metric(cutOff, 'signaling_db_up')).toBe(0);
  await refusedAtOnce(victims[0]!.client, { type: 'leave', room: victims[0]!.room });
  await refusedAtOnce(joiner, { type: 'join', room: members[1]!.room });
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, cut + 30_000 - Date.now())));
  proxy.setMode('pass');
  await eventually(
    '/readyz 200 on the cut-off node again',
    10_000,
    () => readyz(cutOff),
    (r) => r.status === 200,
  );
  stop();
  await untilAllArrived(members);
  expect(verify(members).broken).toEqual([]);
  expect(members.flatMap((m) => m.churn)).toEqual([]);
  expect(victims.every((m) => m.isConnected)).toBe(true);
  // Views agree: a newcomer on each node finds every member of the room, and no one else.
  for (const room of new Set(members.map((m) => m.room))) {
    const expected = members
      .filter((m) => m.room === room)
      .map((m) => m.id)
      .sort();
    for (const node of nodes) {
      const newcomer = await clients.connect(node);
      const joined = await newcomer.join(room);
      expect(joined.peers.map((p) => p.id).sort()).toEqual(expected);
      expect(await newcomer.request({ type: 'leave', room })).toMatchObject({ type: 'left' });
    }
  }
}, 90_000);

it('Redis black-holed for every node for 5 s: nothing acked is lost, nobody is moved or leaves, and every node is ready again within 5 s of the heal', async () => {
  const env = { RESUME_GRACE_MS: '20000', NODE_HEARTBEAT_MS: '1000' };
  const { url, proxy } = await throughProxy(testRedisUrl());
  const common = { databaseUrl: await createTestDatabase(), redisUrl: url, redisPrefix: `${uniqueName('all')}:`, env };
  const nodes = [await startNode(common)];
  nodes.push(...(await Promise.all([0, 1].map(() => startNode(common)))));
  const { members, stop } = await signallingRooms(nodes, 3);
  await eventually('signals flowing', 5000, async () => members.every((m) => [...m.acked.values()].flat().length > 10), Boolean);

  proxy.setMode('hold');
  const cut = Date.now();
  await eventually(
    '/readyz 503 everywhere',
    5000,
    () => Promise.all(nodes.map(readyz)),
    (rs) => rs.every((r) => r.status === 503),
  );
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, cut + 5000 - Date.now())));
  // The heal, with every flow opened before it forgotten.
  proxy.setMode('forget');
  const healed = Date.now();
  await eventually(
    '/readyz 200 everywhere',
    5000,
    () => Promise.all(nodes.map(readyz)),
    (rs) => rs.every((r) => r.status === 200),
  );
  expect(Date.now() - healed).toBeLessThanOrEqual(5000);
  // Signals flow again, then stop.
  const acked = () => members.reduce((n, m) => n + [...m.acked.values()].flat().length, 0);
  const before = acked();
  await eventually(
    'signals acked again',
    5000,
    async () => acked(),
    (n) => n > before + 100,
  );
  stop();
  await untilAllArrived(members);
  expect(verify(members).broken).toEqual([]);
  expect(members.flatMap((m) => m.churn)).toEqual([]);
  // Nowhere to send them: everyone stayed where they were.
  expect(members.every((m) => m.isConnected && m.client.seen((msg) => msg.type === 'reconnect').length === 0)).toBe(true);
}, 60_000);
