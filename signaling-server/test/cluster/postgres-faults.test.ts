// Postgres fails under a running node in ways that leave an outcome unknown: a COMMIT whose
// connection dies (before or after the change is durable), and a shutdown while Postgres is gone.
// A private Postgres (its server settings change) and a private Redis (CLIENT PAUSE) for each.
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  killAllNodes,
  metric,
  startCluster,
  startNode,
  uniqueName,
  type RunningNode,
} from '../support/cluster.js';
import { ClientTracker } from '../support/clients.js';
import { eventually } from '../support/eventually.js';
import type { TestClient } from '../support/test-client.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../support/throwaway-postgres.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../support/throwaway-redis.js';

const clients = new ClientTracker();
const client = (node: RunningNode) => clients.connect(node);
let postgres: ThrowawayPostgres;
let redis: ThrowawayRedis;
let db: pg.Client;
let redisAdmin: Redis;

beforeAll(async () => {
  [postgres, redis] = await Promise.all([startThrowawayPostgres(), startThrowawayRedis()]);
  db = new pg.Client({ connectionString: postgres.databaseUrl });
  db.on('error', () => {});
  await db.connect();
  redisAdmin = new Redis(redis.url);
}, 60_000);
afterAll(async () => {
  redisAdmin?.disconnect();
  await db?.end().catch(() => {});
  await Promise.all([postgres?.remove(), redis?.stop()]);
}, 30_000);
afterEach(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

/**
 * A database of its own for each test: the participants an earlier test's killed nodes left would
 * otherwise be reaped (a transaction of the reaper's that publishes) in the middle of this one.
 */
const freshDatabase = () => createTestDatabase(postgres.databaseUrl);

const HEARTBEAT_MS = 1000;
// These tests stall Redis (CLIENT PAUSE) and let it go on: a stall longer than the connection
// probe's deadline would be a dead connection (destroyed, and what Redis held dropped with it), so
// the deadline is set above every pause here.
const ENV = {
  NODE_HEARTBEAT_MS: String(HEARTBEAT_MS),
  DB_TIMEOUT_MS: '2000',
  REDIS_TIMEOUT_MS: '5000',
  REDIS_PROBE_TIMEOUT_MS: '10000',
};

/** Two nodes on a database of their own (or the given one) and the private Redis. */
async function twoNodes(env: Record<string, string> = ENV, databaseUrl?: string): Promise<[RunningNode, RunningNode]> {
  const { nodes } = await startCluster(2, { databaseUrl: databaseUrl ?? (await freshDatabase()), redisUrl: redis.url, env });
  return nodes as [RunningNode, RunningNode];
}

/** The sessions of a node (`signaling <node id>`) in the given state, or waiting for the given event. */
async function sessionsOf(node: RunningNode, condition: string): Promise<number[]> {
  const { rows } = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name IN ('signaling', 'signaling ' || $1) AND ${condition}`,
    [node.id],
  );
  return rows.map((r) => r.pid);
}

/**
 * Sends `request` while Redis holds every write, so the node's transaction waits for its publish;
 * ends that session from the side (pg_terminate_backend), then lets Redis go: the event goes out,
 * and the COMMIT meets a dead connection. Resolves with the reply.
 */
async function commitOnDeadConnection(node: RunningNode, sender: TestClient, request: Record<string, unknown>) {
  await redisAdmin.call('CLIENT', 'PAUSE', '4000', 'WRITE');
  try {
    const reply = sender.request(request, 10_000);
    // Awaited by the caller, unless the wait below fails first.
    reply.catch(() => {});
    // Past its first statement (it has written), not merely begun: the change is made, the publish waits.
    const idle = () => sessionsOf(node, `state = 'idle in transaction' AND backend_xid IS NOT NULL`);
    const [pid] = await eventually('the request waiting inside its transaction', 3000, idle, (p) => p.length === 1, 20);
    await db.query('SELECT pg_terminate_backend($1)', [pid]);
    return reply;
  } finally {
    await redisAdmin.call('CLIENT', 'UNPAUSE');
  }
}

const peerLeftOf = (c: TestClient, id: string) => c.seen((m) => m.type === 'peer-left' && m.peer.id === id).length;

describe('a join or leave whose COMMIT outcome is unknown', () => {
  it('a join that did not commit: the joiner gets unavailable and peers who saw it join see it leave', async () => {
    const [a, b] = await twoNodes();
    const room = uniqueName('commit-lost-');
    const watcher = await client(b);
    const watching = await watcher.join(room);
    const joiner = await client(a);

    expect(await commitOnDeadConnection(a, joiner, { type: 'join', room })).toMatchObject({ type: 'error', code: 'unavailable' });
    const phantom = await watcher.waitForType('peer-joined', () => true, 5000);
    expect(await watcher.waitForType('peer-left', (m) => m.peer.id === phantom.peer.id, 10_000)).toMatchObject({
      reason: 'disconnected',
    });
    const newcomer = await client(a);
    expect((await newcomer.join(room)).peers.map((p) => p.id)).toEqual([watching.self.id]);
  }, 30_000);

  it('a join that committed while its connection died: it is removed again, and peers see it leave', async () => {
    const [a, b] = await twoNodes();
    const room = uniqueName('commit-kept-');
    const watcher = await client(b);
    const watching = await watcher.join(room);
    const joiner = await client(a);

    // A synchronous standby that does not exist: every COMMIT is durable locally, then waits for
    // it (statement_timeout does not cover that wait; only the client's own timeout does).
    const probe = new pg.Client({ connectionString: postgres.databaseUrl, query_timeout: 300 });
    probe.on('error', () => {});
    await probe.connect();
    try {
      await probe.query('CREATE TABLE IF NOT EXISTS sync_probe (x int)');
      await db.query(`ALTER SYSTEM SET synchronous_standby_names = 'nobody'`);
      await db.query('SELECT pg_reload_conf()');
      await eventually(
        'commits waiting for the standby',
        5000,
        () =>
          probe.query('INSERT INTO sync_probe VALUES (1)').then(
            () => false,
            () => true,
          ),
        Boolean,
        50,
      );

      const reply = joiner.request({ type: 'join', room }, 10_000);
      const [pid] = await eventually(
        "the join's COMMIT waiting for the standby",
        1500,
        () => sessionsOf(a, `wait_event = 'SyncRep' AND query ILIKE 'commit%'`),
        (p) => p.length === 1,
        20,
      );
      await db.query('SELECT pg_terminate_backend($1)', [pid]);
      expect(await reply).toMatchObject({ type: 'error', code: 'unavailable' });
    } finally {
      await db.query('ALTER SYSTEM RESET synchronous_standby_names');
      await db.query('SELECT pg_reload_conf()');
      await probe.end().catch(() => {});
    }
    const ghost = await watcher.waitForType('peer-joined', () => true, 5000);
    expect(await watcher.waitForType('peer-left', (m) => m.peer.id === ghost.peer.id, 10_000)).toMatchObject({
      reason: 'disconnected',
    });
    const newcomer = await client(a);
    expect((await newcomer.join(room)).peers.map((p) => p.id)).toEqual([watching.self.id]);
  }, 30_000);

  it('a join whose publish timed out and went out later: it is rolled back, and peers see it leave', async () => {
    const env = { ...ENV, REDIS_TIMEOUT_MS: '1000' };
    const [a, b] = await twoNodes(env);
    const room = uniqueName('publish-late-');
    const watcher = await client(b);
    const watching = await watcher.join(room);
    const joiner = await client(a);
    await joiner.request({ type: 'ping' });

    // Redis holds every write longer than the node waits for the publish: the join gives up and
    // rolls back, and its peer-joined goes out when Redis lets go.
    await redisAdmin.call('CLIENT', 'PAUSE', '2500', 'WRITE');
    expect(await joiner.request({ type: 'join', room }, 10_000)).toMatchObject({ type: 'error', code: 'unavailable' });
    const phantom = await watcher.waitForType('peer-joined', () => true, 10_000);
    expect(await watcher.waitForType('peer-left', (m) => m.peer.id === phantom.peer.id, 10_000)).toMatchObject({
      reason: 'disconnected',
    });
    const newcomer = await client(a);
    expect((await newcomer.join(room)).peers.map((p) => p.id)).toEqual([watching.self.id]);
  }, 30_000);

  it('a state write whose publish timed out and went out later: it is kept, so peers and newcomers agree', async () => {
    const env = { ...ENV, REDIS_TIMEOUT_MS: '1000' };
    const [a, b] = await twoNodes(env);
    const room = uniqueName('state-late-');
    const writer = await client(a);
    await writer.join(room);
    const watcher = await client(b);
    await watcher.join(room);

    await redisAdmin.call('CLIENT', 'PAUSE', '2500', 'WRITE');
    const write = { type: 'state', room, version: 0, data: { topic: 'late' } };
    expect(await writer.request(write, 10_000)).toMatchObject({ type: 'error', code: 'unavailable' });
    const seen = await watcher.waitForType('state', () => true, 10_000);
    expect(seen).toMatchObject({ version: 1, data: { topic: 'late' } });
    const newcomer = await client(a);
    expect((await newcomer.join(room)).state).toEqual({ version: 1, data: { topic: 'late' } });
    // The writer's retry finds the value it wrote.
    expect(await writer.request(write)).toMatchObject({
      type: 'error',
      code: 'version-conflict',
      state: { version: 1, data: { topic: 'late' } },
    });
  }, 30_000);

  it('a state write whose publish was lost with its connection: stored, and announced again once the bus is back', async () => {
    const [a, b] = await twoNodes();
    const room = uniqueName('state-lost-');
    const writer = await client(a);
    await writer.join(room);
    const watcher = await client(b);
    await watcher.join(room);

    await redisAdmin.call('CLIENT', 'PAUSE', '4000', 'WRITE');
    let reply;
    try {
      reply = writer.request({ type: 'state', room, version: 0, data: { topic: 'resent' } }, 10_000);
      reply.catch(() => {});
      // Written and publishing: the publish waits in Redis, and its connection is cut before it runs.
      const idle = () => sessionsOf(a, `state = 'idle in transaction' AND backend_xid IS NOT NULL`);
      await eventually('the write waiting for its publish', 3000, idle, (p) => p.length === 1, 20);
      const clients = String(await redisAdmin.call('CLIENT', 'LIST'));
      const publisher = new RegExp(`^id=(\\d+) .*name=${a.id}:pub `, 'm').exec(clients)?.[1];
      expect(publisher, 'node a publishes on a connection of its own').toBeDefined();
      await redisAdmin.call('CLIENT', 'KILL', 'ID', publisher!);
    } finally {
      await redisAdmin.call('CLIENT', 'UNPAUSE');
    }
    expect(await reply).toMatchObject({ type: 'error', code: 'unavailable' });
    expect(await watcher.waitForType('state', () => true, 10_000)).toMatchObject({ version: 1, data: { topic: 'resent' } });
    const newcomer = await client(a);
    expect((await newcomer.join(room)).state).toEqual({ version: 1, data: { topic: 'resent' } });
  }, 30_000);

  it('a leave that did not commit: it is done again, so later joiners do not list the leaver, and peers hear it once', async () => {
    const databaseUrl = await freshDatabase();
    const [a, b] = await twoNodes(ENV, databaseUrl);
    const room = uniqueName('leave-lost-');
    const watcher = await client(b);
    const watching = await watcher.join(room);
    const leaver = await client(a);
    const leaving = await leaver.join(room);
    await watcher.waitForType('peer-joined', (m) => m.peer.id === leaving.self.id);

    expect(await commitOnDeadConnection(a, leaver, { type: 'leave', room })).toMatchObject({
      type: 'error',
      code: 'unavailable',
    });
    // Peers saw it leave before the commit failed; the leave is done again in the background.
    const roomDb = new pg.Client({ connectionString: databaseUrl });
    await roomDb.connect();
    try {
      await eventually(
        'the leave redone',
        10_000,
        async () => (await roomDb.query('SELECT 1 FROM participants WHERE id = $1', [leaving.self.id])).rowCount,
        (n) => n === 0,
        50,
      );
    } finally {
      await roomDb.end();
    }
    const newcomer = await client(a);
    const joined = await newcomer.join(room);
    expect(joined.peers.map((p) => p.id)).toEqual([watching.self.id]);
    // The redone leave's peer-left came before the newcomer's peer-joined; nobody is told twice.
    await watcher.waitForType('peer-joined', (m) => m.peer.id === joined.self.id);
    expect(peerLeftOf(watcher, leaving.self.id)).toBe(1);
    expect(await leaver.request({ type: 'leave', room })).toMatchObject({ type: 'left' });
  }, 30_000);
});

describe('every COMMIT stalling (a synchronous standby gone) for longer than the reaper waits', () => {
  it('judges no node dead: heartbeats stalled with everything else, and the rooms keep their members', async () => {
    // A query timeout longer than the stall: the reaper must see it as a stall, not as a failure.
    const env = { ...ENV, DB_TIMEOUT_MS: '15000' };
    const databaseUrl = await freshDatabase();
    const [a, b] = await twoNodes(env, databaseUrl);
    const room = uniqueName('stall-');
    const alice = await client(a);
    const aliceJoined = await alice.join(room);
    const bob = await client(b);
    const bobJoined = await bob.join(room);
    await alice.waitForType('peer-joined', (m) => m.peer.id === bobJoined.self.id);

    const nodesDb = new pg.Client({ connectionString: databaseUrl });
    await nodesDb.connect();
    await db.query(`ALTER SYSTEM SET synchronous_standby_names = 'nobody'`);
    await db.query('SELECT pg_reload_conf()');
    try {
      // Both heartbeats as others see them go stale: the beat in flight waits for its COMMIT.
      // Past three periods, even that beat is more than two periods old when it lands.
      await eventually(
        'heartbeats more than three periods old',
        15_000,
        async () =>
          (
            await nodesDb.query<{ stale: boolean }>(
              `SELECT bool_and(heartbeat_at < now() - make_interval(secs => $2)) AS stale FROM nodes WHERE id = ANY($1)`,
              [[a.id, b.id], (3.2 * HEARTBEAT_MS) / 1000],
            )
          ).rows[0]?.stale,
        Boolean,
        50,
      );
    } finally {
      await db.query('ALTER SYSTEM RESET synchronous_standby_names');
      await db.query('SELECT pg_reload_conf()');
      await nodesDb.end();
    }

    // The reaper gets three periods (two rounds each) of database that answers again.
    const reapsOf = async (node: RunningNode) => (await metric(node, 'signaling_db_query_seconds_count{op="reap"}')) || 0;
    const reapRounds = async () => (await reapsOf(a)) + (await reapsOf(b));
    const before = await reapRounds();
    await eventually('six reaper rounds after the stall', 10_000, reapRounds, (n) => n >= before + 6, 50);

    expect([await metric(a, 'signaling_judged_dead_total'), await metric(b, 'signaling_judged_dead_total')]).toEqual([0, 0]);
    expect(alice.seen((m) => m.type === 'peer-left')).toEqual([]);
    expect(bob.seen((m) => m.type === 'peer-left')).toEqual([]);
    const newcomer = await client(a);
    expect((await newcomer.join(room)).peers.map((p) => p.id).sort()).toEqual([aliceJoined.self.id, bobJoined.self.id].sort());
  }, 60_000);
});

describe('a node stopping while Postgres is gone and Redis hangs', () => {
  it('exits within DRAIN_TIMEOUT_MS', async () => {
    const DRAIN_TIMEOUT_MS = 3000;
    const node = await startNode({
      databaseUrl: postgres.databaseUrl,
      redisUrl: redis.url,
      redisPrefix: `${uniqueName('t')}:`,
      env: {
        DB_TIMEOUT_MS: '1000',
        DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
        DRAIN_SPREAD_MS: '200',
        RECONNECT_JITTER_MS: '200',
        RESUME_GRACE_MS: '5000',
      },
    });
    const alice = await client(node);
    await alice.join(uniqueName('drain-'));
    await postgres.stop();
    // Every Redis command waits (to the end of the file: nothing unpauses an ALL pause early).
    await redisAdmin.call('CLIENT', 'PAUSE', '8000', 'ALL');
    try {
      const stopping = Date.now();
      node.process.kill('SIGTERM');
      const exit = await Promise.race([
        node.exited.then((code) => ({ code })),
        new Promise<null>((r) => setTimeout(() => r(null), DRAIN_TIMEOUT_MS + 5000)),
      ]);
      expect(exit, 'the node still runs').not.toBeNull();
      expect(Date.now() - stopping).toBeLessThan(DRAIN_TIMEOUT_MS + 1500);
      expect(await alice.closed).toMatchObject({ code: 1012 });
    } finally {
      await postgres.start();
    }
  }, 40_000);
});
