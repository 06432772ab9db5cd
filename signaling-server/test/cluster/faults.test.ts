// A dependency fails under a running two-node cluster: Redis restarts, Postgres goes away and comes
// back. Each runs on a private server (test/support/throwaway-*.ts) so stopping it harms nobody.
// (A node killed with SIGKILL is failover.test.ts's business.)
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker } from '../support/clients.js';
import { eventually } from '../support/eventually.js';
import type { TestClient } from '../support/test-client.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../support/throwaway-postgres.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../support/throwaway-redis.js';

const clients = new ClientTracker();
const client = (node: RunningNode) => clients.connect(node);

afterEach(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

async function readyStatus(node: RunningNode): Promise<number> {
  try {
    const res = await fetch(`${node.httpUrl}/readyz`, { signal: AbortSignal.timeout(3000) });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

/** One series of a node's /metrics, e.g. ('signaling_db_query_seconds_count', 'op="reap"'); 0 when absent. */
async function metric(node: RunningNode, name: string, labels: string): Promise<number> {
  const res = await fetch(`${node.httpUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/**
 * Rejects as soon as one of the nodes exits (with its stderr, where a crash says why): a dependency
 * outage must never take a node down, and a dead node would otherwise show up only as a timeout.
 */
function watchForExit(nodes: RunningNode[]): <T>(work: Promise<T>) => Promise<T> {
  const stderr = new Map(nodes.map((n) => [n, '']));
  for (const n of nodes) n.process.stderr!.on('data', (chunk: string) => stderr.set(n, stderr.get(n)! + chunk));
  const died = Promise.race(
    nodes.map((n) =>
      n.exited.then((code) => {
        throw new Error(`node ${n.id} exited (code ${code}, signal ${n.process.signalCode}):\n${stderr.get(n)!.slice(-3000)}`);
      }),
    ),
  );
  died.catch(() => {});
  return (work) => Promise.race([work, died]);
}

const readiness = (nodes: RunningNode[]) => () => Promise.all(nodes.map(readyStatus));
const all = (status: number) => (statuses: number[]) => statuses.every((s) => s === status);

describe('Redis restarts under a running cluster', () => {
  let redis: ThrowawayRedis;
  beforeAll(async () => {
    redis = await startThrowawayRedis();
  }, 20_000);
  afterAll(async () => {
    await redis?.stop();
  });

  it('while Redis is down nodes are unready and refuse cross-node messages with unavailable; once it is back messages flow again', async () => {
    const { nodes } = await startCluster(2, { redisUrl: redis.url });
    await watchForExit(nodes)(redisRestart(nodes, redis));
  }, 30_000);
});

/** Alice on node A and Bob on node B through a Redis stop and start. */
async function redisRestart(nodes: RunningNode[], redis: ThrowawayRedis): Promise<void> {
  const [a, b] = nodes as [RunningNode, RunningNode];
  const room = 'redis-restart';
  const { alice, bob, aj, bj } = await clients.pairUp(a, b, room);
  expect(await readiness(nodes)()).toEqual([200, 200]);

  await redis.stop();
  await eventually('/readyz 503 on both nodes', 5000, readiness(nodes), all(503));
  // The sockets stay up: each node still answers its own clients.
  expect(await alice.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  expect(await bob.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  // A message for the other node cannot be handed to the bus: the sender hears so, no hang.
  expect(await alice.request({ type: 'signal', room, to: bj.self.id, data: 'during-outage' }, 5000)).toMatchObject({
    type: 'error',
    code: 'unavailable',
  });
  expect(await bob.request({ type: 'broadcast', room, data: 'during-outage' }, 5000)).toMatchObject({
    type: 'error',
    code: 'unavailable',
  });

  await redis.start();
  await eventually('/readyz 200 on both nodes', 5000, readiness(nodes), all(200));
  expect(await alice.request({ type: 'signal', room, to: bj.self.id, data: 'a-to-b' })).toMatchObject({ type: 'ack' });
  expect(await bob.waitForType('signal', (m) => m.data === 'a-to-b')).toMatchObject({ room, from: aj.self.id });
  expect(await bob.request({ type: 'signal', room, to: aj.self.id, data: 'b-to-a' })).toMatchObject({ type: 'ack' });
  expect(await alice.waitForType('signal', (m) => m.data === 'b-to-a')).toMatchObject({ room, from: bj.self.id });
  expect(await alice.request({ type: 'broadcast', room, data: 'from-alice' })).toMatchObject({ type: 'ack' });
  expect(await bob.waitForType('broadcast', (m) => m.data === 'from-alice')).toMatchObject({ room, from: aj.self.id });
  expect(await bob.request({ type: 'broadcast', room, data: 'from-bob' })).toMatchObject({ type: 'ack' });
  expect(await alice.waitForType('broadcast', (m) => m.data === 'from-bob')).toMatchObject({ room, from: bj.self.id });
  // What the bus refused during the outage was not delivered later either.
  expect(bob.seen((m) => m.type === 'signal' && m.data === 'during-outage')).toEqual([]);
  expect(alice.seen((m) => m.type === 'broadcast' && m.data === 'during-outage')).toEqual([]);
}

const HEARTBEAT_MS = 1000;

describe('Postgres goes away and comes back', () => {
  let postgres: ThrowawayPostgres;
  beforeAll(async () => {
    postgres = await startThrowawayPostgres();
  }, 60_000);
  afterAll(async () => {
    await postgres?.remove();
  }, 30_000);

  it('joins and state answer unavailable while signals flow; afterwards the dropped participant leaves and nobody else does', async () => {
    const { nodes } = await startCluster(2, {
      databaseUrl: postgres.databaseUrl,
      env: { DB_TIMEOUT_MS: '1000', NODE_HEARTBEAT_MS: String(HEARTBEAT_MS), RESUME_GRACE_MS: '2000' },
    });
    await watchForExit(nodes)(postgresOutage(nodes, postgres));
  }, 30_000);
});

/** Alice on node A, Bob and Carol on node B, Dave trying to join on node A, through a Postgres stop and start. */
async function postgresOutage(nodes: RunningNode[], postgres: ThrowawayPostgres): Promise<void> {
  const [a, b] = nodes as [RunningNode, RunningNode];
  const room = 'pg-outage';
  const alice = await client(a);
  const bob = await client(b);
  const carol = await client(b);
  const aj = await alice.join(room);
  const bj = await bob.join(room);
  const cj = await carol.join(room);
  await alice.waitForType('peer-joined', (m) => m.peer.id === cj.self.id);
  const dave = await client(a);

  // Outages strike mid-query. Hold the room's row lock from the side, so that Alice's state write is
  // still waiting inside Postgres when it stops (DB_TIMEOUT_MS leaves about a second for that).
  const blocker = new pg.Client({ connectionString: postgres.databaseUrl });
  blocker.on('error', () => {}); // it dies with the server, as intended
  await blocker.connect();
  await blocker.query('BEGIN');
  await blocker.query('SELECT 1 FROM rooms WHERE name = $1 FOR UPDATE', [room]);
  alice.send({ type: 'state', room, data: { topic: 'in-flight' }, version: 0, id: 'in-flight' });
  const inFlight = alice.waitFor((m) => 'id' in m && m.id === 'in-flight', 10_000, 'the reply to the in-flight state');
  const waitingOnLock = `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'signaling %' AND wait_event_type = 'Lock'`;
  await eventually(
    "Alice's state write waiting inside Postgres",
    800,
    async () => (await blocker.query<{ n: number }>(waitingOnLock)).rows[0]!.n,
    (n) => n >= 1,
    20,
  );
  expect(
    alice.seen((m) => 'id' in m && m.id === 'in-flight'),
    'the state write ended before Postgres stopped',
  ).toEqual([]);

  await postgres.stop();
  void blocker.end().catch(() => {});
  // The write in flight fails as unavailable, and its node lives on (watchForExit).
  expect(await inFlight).toMatchObject({ type: 'error', code: 'unavailable' });

  const joinStarted = Date.now();
  const refused = await dave.request({ type: 'join', room }, 10_000);
  const joinMs = Date.now() - joinStarted;
  expect(refused).toMatchObject({ type: 'error', code: 'unavailable' });
  expect(joinMs).toBeLessThan(5000);
  expect(await alice.request({ type: 'state', room, data: { topic: 'x' }, version: 0 }, 10_000)).toMatchObject({
    type: 'error',
    code: 'unavailable',
  });

  // Signals and broadcasts need no database.
  expect(await alice.request({ type: 'signal', room, to: bj.self.id, data: 'pg-down' })).toMatchObject({ type: 'ack' });
  expect(await bob.waitForType('signal', (m) => m.data === 'pg-down')).toMatchObject({ from: aj.self.id });
  expect(await bob.request({ type: 'broadcast', room, data: 'pg-down' })).toMatchObject({ type: 'ack' });
  expect(await alice.waitForType('broadcast', (m) => m.data === 'pg-down')).toMatchObject({ from: bj.self.id });

  // Carol's connection is lost while nothing can be recorded: node B notices and tries (and fails)
  // to record her disconnect before the database is back.
  carol.drop();
  await eventually(
    "node B's attempt to record Carol's disconnect",
    5000,
    () => metric(b, 'signaling_db_query_seconds_count', 'op="disconnect"'),
    (attempts) => attempts >= 1,
  );
  expect(await readiness(nodes)()).toEqual([503, 503]);
  expect(alice.seen((m) => m.type === 'peer-left')).toEqual([]);

  await postgres.start();
  await eventually('/readyz 200 on both nodes', 5000, readiness(nodes), all(200));
  const daveJoined = await dave.join(room);
  expect(daveJoined.peers.map((p) => p.id)).toEqual(expect.arrayContaining([aj.self.id, bj.self.id]));

  // Her disconnect lands late, her grace runs out, and she leaves for everyone still there.
  expect(await alice.waitForType('peer-left', (m) => m.peer.id === cj.self.id, 10_000)).toEqual({
    type: 'peer-left',
    room,
    peer: { id: cj.self.id },
    reason: 'disconnected',
  });

  // The others outlived the outage: give the reaper two more heartbeat periods of judging (every
  // node beat twice, and enough reaper rounds ran), then a round trip each, and nobody else left.
  const beats = await Promise.all(nodes.map((n) => metric(n, 'signaling_db_query_seconds_count', 'op="heartbeat"')));
  const reapsOf = async () =>
    (await Promise.all(nodes.map((n) => metric(n, 'signaling_db_query_seconds_count', 'op="reap"')))).reduce((x, y) => x + y);
  const reaps = await reapsOf();
  await eventually(
    'two more heartbeats on each node',
    4 * HEARTBEAT_MS,
    () => Promise.all(nodes.map((n) => metric(n, 'signaling_db_query_seconds_count', 'op="heartbeat"'))),
    (now) => now.every((count, i) => count >= beats[i]! + 2),
  );
  await eventually('four more reaper rounds', 4 * HEARTBEAT_MS, reapsOf, (now) => now >= reaps + 4);
  await Promise.all([alice, bob, dave].map((c) => c.request({ type: 'ping' })));
  const leftIds = (c: TestClient) => c.seen((m) => m.type === 'peer-left').map((m) => (m as { peer: { id: string } }).peer.id);
  expect(leftIds(alice)).toEqual([cj.self.id]);
  expect(leftIds(bob)).toEqual([cj.self.id]);
  // Dave joined after the recovery, possibly after Carol was gone already.
  expect(leftIds(dave).filter((id) => id !== cj.self.id)).toEqual([]);
  // Their memberships are still real: a newcomer finds Alice, Bob and Dave, not Carol.
  const erin = await client(b);
  expect((await erin.join(room)).peers.map((p) => p.id).sort()).toEqual([aj.self.id, bj.self.id, daveJoined.self.id].sort());
}
