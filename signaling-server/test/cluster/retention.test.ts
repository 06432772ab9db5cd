// Under steady churn the database stops growing: with short retention periods, old room events,
// rooms nobody uses any more and dead nodes are pruned while the churn goes on, by one node at a
// time, and a room still in use keeps its row and its state.
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { killAllNodes, metric, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';

const RETENTION_MS = 1000;
/** Churn goes on this long, in rounds of at least ROUND_MS, so the rate stays steady on a fast machine. */
const RUN_MS = 5 * RETENTION_MS;
const ROUND_MS = 250;
const ROOMS_PER_ROUND = 12;
const clients = new ClientTracker();
let nodes: RunningNode[];
let db: pg.Client;

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: {
      EVENT_RETENTION_MS: String(RETENTION_MS),
      ROOM_RETENTION_MS: String(RETENTION_MS),
      NODE_RETENTION_MS: String(RETENTION_MS),
      RETENTION_INTERVAL_MS: '200',
      // Small batches, so a round takes several of them.
      RETENTION_BATCH_SIZE: '10',
      NODE_HEARTBEAT_MS: '500',
    },
  });
  nodes = cluster.nodes;
  db = new pg.Client({ connectionString: cluster.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
  await db.end();
});

const count = async (table: string): Promise<number> => (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n;

it('keeps rooms, room_events and nodes from growing under churn, and leaves a room in use alone', async () => {
  const [a, b] = nodes as [RunningNode, RunningNode];
  const lasting = newRoom('lasting');
  const keeper = await clients.connect(a);
  await keeper.join(lasting);
  expect(await keeper.request({ type: 'state', room: lasting, data: { kept: true }, version: 0 })).toMatchObject({ version: 1 });

  const sizes: { at: number; rooms: number; room_events: number; nodes: number }[] = [];
  const created = { rooms: 0, room_events: 0, nodes: 0 };
  const started = Date.now();
  for (let round = 0; Date.now() - started < RUN_MS; round++) {
    const roundStarted = Date.now();
    // Rooms that come and go: each gets a join, a state write and a leave (three events).
    await Promise.all(
      Array.from({ length: ROOMS_PER_ROUND }, async (_, i) => {
        const c = await clients.connect(i % 2 ? a : b);
        const room = newRoom('churn');
        await c.join(room);
        await c.request({ type: 'state', room, data: { i }, version: 0 });
        await c.request({ type: 'leave', room });
        c.close();
      }),
    );
    // And nodes that came and went (a scale-down, a crash): their rows stop heartbeating.
    await db.query(
      `INSERT INTO nodes (id, status, heartbeat_at) SELECT 'gone-' || $1 || '-' || g, 'up', now() - interval '1 minute' FROM generate_series(1, 3) g`,
      [round],
    );
    created.rooms += ROOMS_PER_ROUND;
    created.room_events += 3 * ROOMS_PER_ROUND;
    created.nodes += 3;
    sizes.push({
      at: Date.now() - started,
      rooms: await count('rooms'),
      room_events: await count('room_events'),
      nodes: await count('nodes'),
    });
    // Pacing, not waiting for something: the churn is meant to be steady.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, ROUND_MS - (Date.now() - roundStarted))));
  }

  // Once rows start to expire (after a retention period and a round of pruning) the tables hold about
  // one period's worth of churn: the last part of the run is no bigger than the middle (give or take
  // two rounds), and far below what was created.
  const between = (from: number, to: number) => sizes.filter((s) => s.at >= from * RETENTION_MS && s.at < to * RETENTION_MS);
  for (const table of ['rooms', 'room_events', 'nodes'] as const) {
    const middle = Math.max(...between(2, 3.5).map((s) => s[table]));
    const late = Math.max(...between(3.5, Infinity).map((s) => s[table]));
    const perRound = created[table] / sizes.length;
    const trace = JSON.stringify(sizes.map((s) => `${s.at}:${s[table]}`));
    expect(late, `${table}: ${trace}`).toBeLessThanOrEqual(middle + 2 * perRound);
    expect(sizes.at(-1)![table]).toBeLessThan(created[table] / 2);
  }

  // One node at a time holds the retention lease (it may move when a round runs late); the
  // metric says what was pruned.
  const { rows } = await db.query(`SELECT holder FROM leases WHERE name = 'retention'`);
  expect(nodes.map((n) => n.id)).toContain(rows[0].holder);
  for (const table of ['rooms', 'room_events', 'nodes']) {
    const pruned = await Promise.all(nodes.map((n) => metric(n, `signaling_pruned_total{table="${table}"}`)));
    expect(pruned.filter((v) => v > 0).length, table).toBeGreaterThan(0);
  }

  // The room in use kept its row and its state all along.
  const late = await clients.connect(b);
  expect((await late.join(lasting)).state).toEqual({ version: 1, data: { kept: true } });
});
