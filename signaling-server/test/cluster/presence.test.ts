// Presence converges under partial failure: a reaper round that fails part way, a node frozen with a
// room locked, a bus publisher that hangs while joins hold database connections, and a node that
// the cluster judged dead while it was alive. Real node processes, Postgres and Redis; the faults
// that need a private Redis get a throwaway one.
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
import { startThrowawayRedis, type ThrowawayRedis } from '../support/throwaway-redis.js';

const clients = new ClientTracker();
const client = (node: RunningNode) => clients.connect(node);
const databases: pg.Client[] = [];

afterEach(async () => {
  expect(clients.dropAll()).toEqual([]);
  for (const n of [...running]) if (n.process.signalCode === null && n.process.exitCode === null) n.process.kill('SIGCONT');
  running.length = 0;
  await killAllNodes();
  await Promise.all(databases.splice(0).map((db) => db.end().catch(() => {})));
});

/** A private Redis for the faults a shared one must not see (ACL changes, CLIENT PAUSE). */
let redis: ThrowawayRedis;
beforeAll(async () => {
  redis = await startThrowawayRedis();
}, 20_000);
afterAll(async () => {
  await redis?.stop();
});

/** Nodes a test may have stopped with SIGSTOP: woken before they are killed. */
const running: RunningNode[] = [];

async function sqlClient(databaseUrl: string): Promise<pg.Client> {
  const db = new pg.Client({ connectionString: databaseUrl });
  db.on('error', () => {});
  await db.connect();
  databases.push(db);
  return db;
}

const peerLeft = (c: TestClient, id: string, timeoutMs = 10_000) =>
  c.waitForType('peer-left', (m) => m.peer.id === id, timeoutMs);
const leftIds = (c: TestClient) => c.seen((m) => m.type === 'peer-left').map((m) => (m as { peer: { id: string } }).peer.id);

/** One labelled series of a node's /metrics; 0 when absent. */
async function labelled(node: RunningNode, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/**
 * The Postgres sessions of the nodes that sit inside a transaction that has written something (a
 * join that holds its room's lock, not one that has only begun), waiting on something outside.
 */
async function idleInTransaction(db: pg.Client): Promise<number[]> {
  const { rows } = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() AND application_name LIKE 'signaling%' AND state = 'idle in transaction'
       AND backend_xid IS NOT NULL`,
  );
  return rows.map((r) => r.pid);
}

/** How the server closed the client's connection, or null if it stayed open that long. */
function closedWithin(c: TestClient, ms: number): Promise<{ code: number } | null> {
  return Promise.race([c.closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), ms))]);
}

async function nodeStatus(db: pg.Client, nodeId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ status: string }>('SELECT status FROM nodes WHERE id = $1', [nodeId]);
  return rows[0]?.status;
}

describe('a reaper round that fails half way', () => {
  it('goes on with the other rooms, and once the fault is gone no participant of the dead node stays listed, counted or resumable', async () => {
    const HEARTBEAT_MS = 1000;
    const admin = new Redis(redis.url);
    try {
      // The reaper node talks to Redis as a user that may publish to every channel except those
      // ending in '.': a real per-room publish failure (NOPERM), switched off by the test later.
      await admin.call('ACL', 'SETUSER', 'reaper', 'on', '>secret', '~*', '&*', '+@all');
      const databaseUrl = await createTestDatabase();
      const redisPrefix = `${uniqueName('t')}:`;
      const env = { NODE_HEARTBEAT_MS: String(HEARTBEAT_MS), RESUME_GRACE_MS: '60000', MAX_PARTICIPANTS_PER_ROOM: '2' };
      const common = { databaseUrl, redisPrefix, env };
      const reaperNode = await startNode({ ...common, redisUrl: `redis://reaper:secret@127.0.0.1:${redis.port}` });
      // Started first and alone, it takes the reaper lease and keeps it.
      await eventually(
        'the first node leads the reaper',
        5000,
        async () => reaperNode.logs.some((l) => l.msg === 'leading the reaper'),
        Boolean,
      );
      const [doomed, survivor] = await Promise.all([
        startNode({ ...common, redisUrl: redis.url }),
        startNode({ ...common, redisUrl: redis.url }),
      ]);

      const okRoom = 'reaped-fine';
      const stuckRoom = 'reaped-late.';
      const watcher = await client(survivor!);
      await watcher.join(okRoom);
      const watching = await watcher.join(stuckRoom);
      const ghostOk = await (await client(doomed!)).join(okRoom);
      const ghostStuck = await client(doomed!);
      const stuck = await ghostStuck.join(stuckRoom);
      await watcher.waitForType('peer-joined', (m) => m.peer.id === stuck.self.id);

      // Every channel of a room is `<prefix>{r:<room>}:<name>`: rooms ending in '.' lose theirs.
      await admin.call('ACL', 'SETUSER', 'reaper', 'resetchannels', '&*[^.]}:*');
      await doomed!.kill();

      // The round fails for one room and still frees the other.
      expect(await peerLeft(watcher, ghostOk.self.id, 4 * HEARTBEAT_MS)).toMatchObject({ room: okRoom, reason: 'disconnected' });
      await eventually(
        'a failed room on the reaper',
        5000,
        () => labelled(reaperNode, 'signaling_background_errors_total', 'task="reaper-room"'),
        (n) => n >= 1,
      );
      expect(leftIds(watcher)).toEqual([ghostOk.self.id]);

      // Once publishing works again, a later round finds the dead node's last participant.
      await admin.call('ACL', 'SETUSER', 'reaper', 'allchannels');
      expect(await peerLeft(watcher, stuck.self.id, 4 * HEARTBEAT_MS)).toMatchObject({ room: stuckRoom, reason: 'disconnected' });
      // Not counted toward room-full (the limit is 2), not listed, not resumable.
      const newcomer = await client(survivor!);
      const joined = await newcomer.join(stuckRoom);
      expect(joined.peers.map((p) => p.id)).toEqual([watching.self.id]);
      const comeback = await client(survivor!);
      const resumed = await comeback.request({ type: 'join', room: okRoom, resume: ghostOk.resume });
      expect(resumed).toMatchObject({ type: 'joined' });
      expect((resumed as { self: { id: string } }).self.id).not.toBe(ghostOk.self.id);
    } finally {
      admin.disconnect();
    }
  }, 40_000);
});

describe('a node frozen with a room locked', () => {
  it('joins to that room answer unavailable in bounded time, other rooms and the reaper go on, and Postgres cuts the frozen session', async () => {
    const HEARTBEAT_MS = 1000;
    const IDLE_IN_TRANSACTION_MS = 8000;
    const { nodes, databaseUrl } = await startCluster(2, {
      redisUrl: redis.url,
      env: {
        NODE_HEARTBEAT_MS: String(HEARTBEAT_MS),
        DB_TIMEOUT_MS: '1000',
        REDIS_TIMEOUT_MS: '5000',
        DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: String(IDLE_IN_TRANSACTION_MS),
        RESUME_GRACE_MS: '1500',
      },
    });
    const [frozen, live] = nodes as [RunningNode, RunningNode];
    running.push(frozen);
    const db = await sqlClient(databaseUrl);
    const admin = new Redis(redis.url);
    try {
      const lockedRoom = 'locked';
      const otherRoom = 'unlocked';
      const watcher = await client(live);
      const watching = await watcher.join(lockedRoom);
      await watcher.join(otherRoom);
      // Two participants whose grace will run out while the room is locked: one in each room.
      const goneLocked = await client(live);
      const gl = await goneLocked.join(lockedRoom);
      const goneOther = await client(live);
      const go = await goneOther.join(otherRoom);
      await watcher.waitForType('peer-joined', (m) => m.peer.id === go.self.id);

      // Freeze the first node inside a join's transaction, the room's row lock held: its publish
      // waits on a paused Redis, and the process stops (a paused VM) before it can commit.
      await admin.call('CLIENT', 'PAUSE', '4000', 'WRITE');
      const stuckJoiner = await client(frozen);
      stuckJoiner.send({ type: 'join', room: lockedRoom, id: 'stuck' });
      const [frozenPid] = await eventually(
        'the join waiting inside its transaction',
        3000,
        () => idleInTransaction(db),
        (p) => p.length === 1,
        20,
      );
      frozen.process.kill('SIGSTOP');
      await admin.call('CLIENT', 'UNPAUSE');

      goneLocked.drop();
      goneOther.drop();
      // The reaper still frees the unlocked room (and judges the frozen node dead) while the lock is held.
      expect(await peerLeft(watcher, go.self.id, 1500 + 4 * HEARTBEAT_MS)).toMatchObject({ room: otherRoom });
      expect(await idleInTransaction(db)).toContain(frozenPid);

      // A join to the locked room answers unavailable quickly; other rooms work.
      const blocked = await client(live);
      const started = Date.now();
      expect(await blocked.request({ type: 'join', room: lockedRoom }, 5000)).toMatchObject({
        type: 'error',
        code: 'unavailable',
      });
      expect(Date.now() - started).toBeLessThan(2500);
      await (await client(live)).join('elsewhere');

      // Postgres ends the frozen session; the room is usable again, and its expired participant goes.
      await eventually(
        'the frozen session ended by Postgres',
        IDLE_IN_TRANSACTION_MS + 3000,
        () => idleInTransaction(db),
        (p) => p.length === 0,
      );
      expect(await peerLeft(watcher, gl.self.id, 4 * HEARTBEAT_MS)).toMatchObject({ room: lockedRoom });
      const late = await client(live);
      expect((await late.join(lockedRoom)).peers.map((p) => p.id)).toEqual([watching.self.id]);
    } finally {
      admin.disconnect();
    }
  }, 60_000);
});

describe('a bus publisher that hangs while joins hold database connections', () => {
  it('does not get the node judged dead: its participants stay for everyone', async () => {
    const HEARTBEAT_MS = 500;
    const { nodes } = await startCluster(2, {
      redisUrl: redis.url,
      env: { NODE_HEARTBEAT_MS: String(HEARTBEAT_MS), DB_TIMEOUT_MS: '900', REDIS_TIMEOUT_MS: '5000', DB_POOL_SIZE: '2' },
    });
    const [busy, other] = nodes as [RunningNode, RunningNode];
    const room = 'publisher-hangs';
    const { alice, bob, aj, bj } = await clients.pairUp(busy, other, room);

    const admin = new Redis(redis.url);
    try {
      // Every write to Redis waits 3 s: each join holds a database connection across its publish.
      const PAUSE_MS = 3000;
      await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'WRITE');
      const joiners = await Promise.all(Array.from({ length: 6 }, () => client(busy)));
      const replies = joiners.map((j, i) => j.request({ type: 'join', room: `crowd-${i}` }, PAUSE_MS + 5000));
      await Promise.all(replies);
    } finally {
      admin.disconnect();
    }
    // Give the reaper three more heartbeat periods to judge, then check nobody left.
    const beats = await metric(busy, 'signaling_db_query_seconds_count{op="heartbeat"}');
    await eventually(
      'three more heartbeats',
      6 * HEARTBEAT_MS,
      () => metric(busy, 'signaling_db_query_seconds_count{op="heartbeat"}'),
      (n) => n >= beats + 3,
    );
    await bob.request({ type: 'ping' });
    expect(leftIds(bob)).toEqual([]);
    expect(await alice.request({ type: 'signal', room, to: bj.self.id, data: 'still here' })).toMatchObject({ type: 'ack' });
    expect(await bob.waitForType('signal', (m) => m.data === 'still here')).toMatchObject({ from: aj.self.id });
    expect(await bob.request({ type: 'signal', room, to: aj.self.id, data: 'me too' })).toMatchObject({ type: 'ack' });
    expect(await alice.waitForType('signal', (m) => m.data === 'me too')).toMatchObject({ from: bj.self.id });
  }, 30_000);
});

describe('a node the cluster judged dead while it was alive', () => {
  it('whose row was marked dead closes its connections with 1012; its clients resume and it registers again', async () => {
    const HEARTBEAT_MS = 500;
    const { nodes, databaseUrl } = await startCluster(2, {
      env: { NODE_HEARTBEAT_MS: String(HEARTBEAT_MS), RESUME_GRACE_MS: '10000' },
    });
    const [marked, other] = nodes as [RunningNode, RunningNode];
    const db = await sqlClient(databaseUrl);
    const room = 'marked-dead';
    const { alice, bob, aj, bj } = await clients.pairUp(marked, other, room);

    await db.query(`UPDATE nodes SET status = 'dead' WHERE id = $1`, [marked.id]);
    expect(await closedWithin(alice, 4 * HEARTBEAT_MS)).toMatchObject({ code: 1012 });
    await eventually(
      'the node registered again',
      4 * HEARTBEAT_MS,
      () => nodeStatus(db, marked.id),
      (s) => s === 'up',
    );

    const again = await client(marked);
    const resumed = await again.join(room, { resume: aj.resume });
    expect(resumed.self.id).toBe(aj.self.id);
    expect(await bob.request({ type: 'signal', room, to: aj.self.id, data: 'welcome back' })).toMatchObject({ type: 'ack' });
    expect(await again.waitForType('signal', (m) => m.data === 'welcome back')).toMatchObject({ from: bj.self.id });
    expect(leftIds(bob)).toEqual([]);
  }, 30_000);

  it('after a freeze that got its participants removed, closes their connections with 1012; they re-join and the node serves again', async () => {
    const HEARTBEAT_MS = 500;
    const { nodes, databaseUrl } = await startCluster(2, {
      env: { NODE_HEARTBEAT_MS: String(HEARTBEAT_MS), RESUME_GRACE_MS: '10000' },
    });
    const [paused, other] = nodes as [RunningNode, RunningNode];
    running.push(paused);
    const db = await sqlClient(databaseUrl);
    const room = 'frozen-node';
    const { alice, bob, aj, bj } = await clients.pairUp(paused, other, room);

    paused.process.kill('SIGSTOP');
    expect(await peerLeft(bob, aj.self.id, 8 * HEARTBEAT_MS)).toMatchObject({ reason: 'disconnected' });
    await eventually(
      'the frozen node marked dead',
      4 * HEARTBEAT_MS,
      () => nodeStatus(db, paused.id),
      (s) => s === 'dead',
    );
    paused.process.kill('SIGCONT');

    expect(await closedWithin(alice, 4 * HEARTBEAT_MS)).toMatchObject({ code: 1012 });
    await eventually(
      'the node registered again',
      4 * HEARTBEAT_MS,
      () => nodeStatus(db, paused.id),
      (s) => s === 'up',
    );

    // Its membership is gone: the resume token starts a fresh participant, whom everyone sees join.
    const again = await client(paused);
    const rejoined = await again.join(room, { resume: aj.resume });
    expect(rejoined.self.id).not.toBe(aj.self.id);
    expect(rejoined.peers.map((p) => p.id)).toEqual([bj.self.id]);
    await bob.waitForType('peer-joined', (m) => m.peer.id === rejoined.self.id);
    const beats = await metric(paused, 'signaling_db_query_seconds_count{op="heartbeat"}');
    await eventually(
      'three more heartbeats',
      6 * HEARTBEAT_MS,
      () => metric(paused, 'signaling_db_query_seconds_count{op="heartbeat"}'),
      (n) => n >= beats + 3,
    );
    await bob.request({ type: 'ping' });
    expect(leftIds(bob)).toEqual([aj.self.id]);
    expect(await bob.request({ type: 'signal', room, to: rejoined.self.id, data: 'hello again' })).toMatchObject({ type: 'ack' });
    expect(await again.waitForType('signal', (m) => m.data === 'hello again')).toMatchObject({ from: bj.self.id });
  }, 30_000);
});
