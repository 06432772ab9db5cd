// Clients that try to hold rooms, a node's memory or its bandwidth with cheap tricks: joining and
// dropping in a loop to keep a room full, piling requests behind a join, sending large frames on
// one or many connections. Each is bounded, with the protocol's error code and a metric, and what
// honest clients do still works.
import { SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, metric, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import type { TestClient } from '../support/test-client.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const clients = new ClientTracker();
let a: RunningNode;
let b: RunningNode;
let db: pg.Client;

const token = (sub: string, room: string) =>
  new SignJWT({ sub, room }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: {
      AUTH_JWT_SECRET: SECRET,
      MAX_PARTICIPANTS_PER_ROOM: '4',
      MAX_GRACE_PER_ROOM: '2',
      MAX_GRACE_PER_IDENTITY: '1',
      // Longer than the test: nothing leaves the room by itself meanwhile.
      RESUME_GRACE_MS: '120000',
      MAX_QUEUED_REQUESTS: '4',
      // A trickle of refill, so a test's bursts decide; the byte tests use addresses of their own.
      CONNECTION_BYTES_PER_SEC: '1024',
      CONNECTION_BYTES_BURST: '100000',
      ADDRESS_BYTES_PER_SEC: '1024',
      ADDRESS_BYTES_BURST: '200000',
    },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
  db = new pg.Client({ connectionString: cluster.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
  await db.end();
});

/** Joins as `sub` on alternating nodes and drops the connection, `times` times; the last resume token. */
async function joinAndDrop(room: string, sub: string, times: number): Promise<string> {
  let resume = '';
  for (let i = 0; i < times; i++) {
    const c = await clients.connect(i % 2 ? a : b);
    ({ resume } = await c.join(room, { token: await token(sub, room) }));
    c.drop();
  }
  await untilNoneConnected(room, sub);
  return resume;
}

/**
 * Waits until the node has recorded the dropped connections' grace periods. Nothing tells a client
 * when that happens, so the database is polled (bounded).
 */
async function untilNoneConnected(room: string, sub: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const { rows } = await db.query(
      `SELECT count(*)::int AS n FROM participants WHERE room = $1 AND identity = $2 AND status = 'connected'`,
      [room, sub],
    );
    if (rows[0].n === 0) return;
    if (Date.now() > deadline) throw new Error(`${sub} still has connected participants in ${room}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('join-and-drop', () => {
  it('cannot keep a room full: one identity in grace holds at most MAX_GRACE_PER_IDENTITY seats', async () => {
    const room = newRoom('churned');
    const lastResume = await joinAndDrop(room, 'mallory', 12);
    // Four seats, one held by mallory's grace: three honest users fit, the fourth finds it full.
    for (const sub of ['alice', 'bob', 'carol']) await (await clients.connect(a)).join(room, { token: await token(sub, room) });
    const late = await clients.connect(b);
    expect(await late.request({ type: 'join', room, token: await token('dave', room) })).toMatchObject({ code: 'room-full' });
    // Whoever is in grace can still come back, seat or not.
    const back = await clients.connect(a);
    const resumed = await back.join(room, { token: await token('mallory', room), resume: lastResume });
    expect(resumed.peers.map((p) => p.id)).toHaveLength(3 + 11);
  });

  it('cannot keep a room full with many identities either: grace holds at most MAX_GRACE_PER_ROOM seats', async () => {
    const room = newRoom('sybil');
    for (let i = 0; i < 6; i++) await joinAndDrop(room, `sybil-${i}`, 1);
    for (const sub of ['alice', 'bob']) await (await clients.connect(b)).join(room, { token: await token(sub, room) });
    const late = await clients.connect(a);
    expect(await late.request({ type: 'join', room, token: await token('carol', room) })).toMatchObject({ code: 'room-full' });
  });
});

describe('the request queue', () => {
  it('holds at most MAX_QUEUED_REQUESTS behind a join; the rest are refused with rate-limited', async () => {
    const room = newRoom('queue');
    const c = await clients.connect(a);
    const joinToken = await token('eager', room);
    // All sent at once: they arrive while the join's transaction is still running.
    const joined = c.request({ type: 'join', room, token: joinToken });
    const replies = Promise.all(Array.from({ length: 10 }, (_, i) => c.request({ type: 'broadcast', room, data: i })));
    expect(await joined).toMatchObject({ type: 'joined' });
    const types = (await replies).map((r) => (r.type === 'error' ? r.code : r.type));
    expect(types).toEqual([...new Array(4).fill('ack'), ...new Array(6).fill('rate-limited')]);
    expect(await metric(a, 'signaling_dropped_total{reason="queue-full"}')).toBe(6);
    // Once the join is done nothing waits, and the room works as usual.
    expect(await c.request({ type: 'broadcast', room, data: 'after' })).toMatchObject({ type: 'ack' });
  });
});

describe('byte rates', () => {
  // A frame refused before it is parsed is answered without its id: wait for the pong or that.
  const codes = async (c: TestClient, n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = `big-${i}`;
      c.send({ type: 'ping', id, padding: 'x'.repeat(30_000) });
      const reply = await c.waitFor((m) => (m.type === 'pong' && m.id === id) || (m.type === 'error' && m.id === undefined));
      out.push(reply.type === 'error' ? reply.code : reply.type);
    }
    return out;
  };

  it('limits the bytes of one connection, and of all connections of one address together', async () => {
    const first = await clients.connect(a, '', undefined, '127.0.1.1');
    // 100 000 bytes of burst per connection: three 30 kB frames pass, the fourth does not.
    expect(await codes(first, 4)).toEqual(['pong', 'pong', 'pong', 'rate-limited']);
    const second = await clients.connect(a, '', undefined, '127.0.1.1');
    expect(await codes(second, 3)).toEqual(['pong', 'pong', 'pong']);
    // 200 000 bytes of burst per address: a third connection of it finds the address spent.
    const third = await clients.connect(a, '', undefined, '127.0.1.1');
    expect(await codes(third, 1)).toEqual(['rate-limited']);
    // Another address is not affected.
    const other = await clients.connect(a, '', undefined, '127.0.1.2');
    expect(await codes(other, 3)).toEqual(['pong', 'pong', 'pong']);
    expect(await metric(a, 'signaling_dropped_total{reason="byte-rate"}')).toBe(1);
    expect(await metric(a, 'signaling_dropped_total{reason="address-byte-rate"}')).toBe(1);
  });
});
