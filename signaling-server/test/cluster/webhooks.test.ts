// Webhooks on three nodes: every membership and state change reaches a local receiver once,
// signed, in order per room; deliveries survive a failing receiver and a killed delivering node.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, metric, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { ADMIN_API_KEYS, callApi } from '../support/operator-api.js';
import { WebhookReceiver, type Delivery } from '../support/webhook-receiver.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const MAX_AGE_MS = 4000;
let nodes: RunningNode[];
let receiver: WebhookReceiver;
let db: pg.Client;
const clients = new ClientTracker();

beforeAll(async () => {
  receiver = await WebhookReceiver.start(SECRET);
  const cluster = await startCluster(3, {
    env: {
      WEBHOOK_URLS: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_TIMEOUT_MS: '1000',
      WEBHOOK_RETRY_MS: '100',
      WEBHOOK_MAX_AGE_MS: String(MAX_AGE_MS),
      NODE_HEARTBEAT_MS: '1000',
      RESUME_GRACE_MS: '300',
      // (A grace shorter than the reconnect jitter is refused at start.)
      RECONNECT_JITTER_MS: '100',
      ADMIN_API_KEYS,
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
  await receiver.close();
});

const types = (events: Delivery[]) => events.map((d) => d.type + (d.data.reason ? `:${d.data.reason}` : ''));
const isFinished = (room: string) => () => receiver.roomEvents(room).some((d) => d.type === 'room.finished');
async function leaseHolder(): Promise<string> {
  const { rows } = await db.query(`SELECT holder FROM leases WHERE name = 'webhooks' AND expires_at > now()`);
  return rows[0]?.holder;
}

describe('what a backend receives', () => {
  it('every change of a room, signed, once, in order, whichever of three nodes it happened on', async () => {
    const [a, b, c] = nodes as [RunningNode, RunningNode, RunningNode];
    const room = newRoom('hook');
    const alice = await clients.connect(a);
    const bob = await clients.connect(b);
    const carol = await clients.connect(c);
    const aj = await alice.join(room, { name: 'alice' });
    const bj = await bob.join(room, { name: 'bob' });
    const cj = await carol.join(room, { name: 'carol' });
    expect(await bob.request({ type: 'state', room, version: 0, data: { x: 1 } })).toMatchObject({ type: 'ack' });
    await alice.request({ type: 'leave', room });
    expect((await callApi(a, 'DELETE', `/v1/rooms/${room}/participants/${cj.self.id}`)).status).toBe(200);
    bob.drop();
    await receiver.until(isFinished(room));

    const events = receiver.roomEvents(room);
    expect(types(events)).toEqual([
      'room.started',
      'participant.joined',
      'participant.joined',
      'participant.joined',
      'room.state.changed',
      'participant.left:left',
      'participant.left:kicked',
      'participant.left:disconnected',
      'room.finished',
    ]);
    expect(events.slice(1, 4).map((d) => [d.data.participant.id, d.data.participant.name, d.data.node])).toEqual([
      [aj.self.id, 'alice', a.id],
      [bj.self.id, 'bob', b.id],
      [cj.self.id, 'carol', c.id],
    ]);
    expect(events[4]!.data).toEqual({ room, version: 1, by: bj.self.id });
    expect(events.slice(5, 8).map((d) => d.data.participant.id)).toEqual([aj.self.id, cj.self.id, bj.self.id]);
    const all = receiver.requests.filter((d) => d.data.room === room);
    expect(all.every((d) => d.isSignatureValid)).toBe(true);
    // Exactly once: no id twice, not one request more than there are events.
    expect(all.length).toBe(events.length);
  });

  it('four rooms changing at once on three nodes: each room in order, each event exactly once', async () => {
    const rooms = [newRoom('hook'), newRoom('hook'), newRoom('hook'), newRoom('hook')];
    const members = await Promise.all(
      rooms.flatMap((room, r) =>
        [0, 1, 2].map(async (i) => {
          const member = await clients.connect(nodes[(r + i) % 3]!);
          return { member, room, id: (await member.join(room)).self.id };
        }),
      ),
    );
    await Promise.all(members.map(({ member, room }) => member.request({ type: 'leave', room })));
    await receiver.until(() => rooms.every((room) => isFinished(room)()));
    for (const room of rooms) {
      const events = receiver.roomEvents(room);
      expect(events[0]!.type).toBe('room.started');
      expect(events[events.length - 1]!.type).toBe('room.finished');
      const mine = members.filter((m) => m.room === room).map((m) => m.id);
      for (const id of mine) {
        const joined = events.findIndex((d) => d.type === 'participant.joined' && d.data.participant.id === id);
        const left = events.findIndex((d) => d.type === 'participant.left' && d.data.participant.id === id);
        expect(joined).toBeGreaterThan(0);
        expect(left).toBeGreaterThan(joined);
      }
      // One room of three that emptied once: started, 3 joined, 3 left, finished — or, when a join
      // came after the room had emptied, another started/finished pair, still balanced.
      const count = (type: string) => events.filter((d) => d.type === type).length;
      expect(count('participant.joined')).toBe(3);
      expect(count('participant.left')).toBe(3);
      expect(count('room.started')).toBe(count('room.finished'));
      expect(receiver.requests.filter((d) => d.data.room === room).length).toBe(events.length);
    }
    const ids = receiver.accepted.map((d) => d.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('when the receiver or a node fails', () => {
  it('a receiver that fails for a while gets every event afterwards, in order', async () => {
    const room = newRoom('hook');
    const failUntil = Date.now() + 1500;
    receiver.respond = () => (Date.now() < failUntil ? 503 : 204);
    const alice = await clients.connect(nodes[0]!);
    await alice.join(room);
    await alice.request({ type: 'leave', room });
    await receiver.until(isFinished(room));
    receiver.respond = () => 204;
    expect(types(receiver.roomEvents(room))).toEqual([
      'room.started',
      'participant.joined',
      'participant.left:left',
      'room.finished',
    ]);
    const failed = receiver.requests.filter((d) => d.data.room === room).length - receiver.roomEvents(room).length;
    expect(failed).toBeGreaterThan(0);
    expect(new Set(receiver.accepted.map((d) => d.id)).size).toBe(receiver.accepted.length);
  });

  it('a backlog whose ids cross a power of ten, first attempts refused: each room still in order', async () => {
    // Twelve rooms join, then all leave: their started/joined rows get ids just below 10^k and
    // their left/finished rows ids from 10^k on, so text order ("1000" < "999") would put a
    // room's end before its start.
    const { rows } = await db.query(`SELECT last_value FROM webhook_outbox_id_seq`);
    const power = 10 ** String(Number(rows[0].last_value) + 100).length;
    await db.query(`SELECT setval('webhook_outbox_id_seq', $1)`, [power - 25]);
    const rooms = Array.from({ length: 12 }, () => newRoom('backlog'));
    const refused = new Set<string>();
    let isBacklogBuilt = false;
    // Until the backlog is built, and the first attempt of every event after: 500 or 503.
    receiver.respond = (d) => {
      if (!rooms.includes(d.data.room)) return 204;
      if (isBacklogBuilt && refused.has(d.id)) return 204;
      refused.add(d.id);
      return refused.size % 2 === 0 ? 500 : 503;
    };
    const members = await Promise.all(rooms.map(async (room, i) => ({ room, client: await clients.connect(nodes[i % 3]!) })));
    await Promise.all(members.map(({ client, room }) => client.join(room)));
    await Promise.all(members.map(({ client, room }) => client.request({ type: 'leave', room })));
    isBacklogBuilt = true;
    await receiver.until(() => rooms.every((room) => isFinished(room)()), 20_000, 'every backlog room');
    receiver.respond = () => 204;

    for (const room of rooms) {
      expect(types(receiver.roomEvents(room)), room).toEqual([
        'room.started',
        'participant.joined',
        'participant.left:left',
        'room.finished',
      ]);
    }
    const { rows: after } = await db.query(`SELECT last_value FROM webhook_outbox_id_seq`);
    expect(Number(after[0].last_value)).toBeGreaterThanOrEqual(power + 20);
  });

  it('events a receiver refuses for longer than WEBHOOK_MAX_AGE_MS are dropped and counted; other rooms flow meanwhile', async () => {
    const stuck = newRoom('stuck');
    const fine = newRoom('fine');
    receiver.respond = (d) => (d.data.room === stuck ? 500 : 204);
    const droppedBefore = await sumMetric('signaling_webhook_dropped_total');
    const alice = await clients.connect(nodes[1]!);
    await alice.join(stuck);
    const bob = await clients.connect(nodes[2]!);
    await bob.join(fine);
    await bob.request({ type: 'leave', room: fine });
    await receiver.until(isFinished(fine), 3000, 'the other room');
    expect(receiver.roomEvents(stuck)).toEqual([]);
    await alice.request({ type: 'leave', room: stuck });
    const deadline = Date.now() + MAX_AGE_MS + 5000;
    while ((await sumMetric('signaling_webhook_dropped_total')) - droppedBefore < 4 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await sumMetric('signaling_webhook_dropped_total')) - droppedBefore).toBe(4);
    expect(receiver.roomEvents(stuck)).toEqual([]);
    receiver.respond = () => 204;
  });

  it('kill -9 of the delivering node mid-delivery: the next one sends the event again with the same webhook-id, then the rest in order', async () => {
    const holderId = await leaseHolder();
    const holder = nodes.find((n) => n.id === holderId)!;
    const others = nodes.filter((n) => n !== holder);
    const room = newRoom('hook');
    let release!: () => void;
    const held = new Promise<number>((resolve) => (release = () => resolve(204)));
    let heldId: string | undefined;
    receiver.respond = (d) => {
      if (d.data.room === room && d.type === 'participant.joined' && heldId === undefined) {
        heldId = d.id;
        return held;
      }
      return 204;
    };
    const alice = await clients.connect(others[0]!);
    const bob = await clients.connect(others[1]!);
    await alice.join(room);
    await receiver.until(() => heldId !== undefined);
    await holder.kill();
    release();
    await bob.join(room);
    await alice.request({ type: 'leave', room });
    await bob.request({ type: 'leave', room });
    await receiver.until(isFinished(room), 20_000);

    expect(types(receiver.roomEvents(room))).toEqual([
      'room.started',
      'participant.joined',
      'participant.joined',
      'participant.left:left',
      'participant.left:left',
      'room.finished',
    ]);
    const deliveriesOf = (id: string) => receiver.requests.filter((d) => d.id === id);
    // The event in flight at the kill comes again, same id and body; nothing else twice.
    expect(deliveriesOf(heldId!).length).toBe(2);
    expect(new Set(deliveriesOf(heldId!).map((d) => d.body)).size).toBe(1);
    const others2 = receiver.requests.filter((d) => d.data.room === room && d.id !== heldId);
    expect(new Set(others2.map((d) => d.id)).size).toBe(others2.length);
    expect(await leaseHolder()).not.toBe(holderId);
  });
});

describe('with two nodes left', () => {
  it('every event of a room still arrives exactly once, in order', async () => {
    const alive = nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null);
    expect(alive).toHaveLength(2);
    const room = newRoom('hook');
    const [x, y] = await Promise.all(alive.map((n) => clients.connect(n)));
    await x!.join(room);
    await y!.join(room);
    await x!.request({ type: 'state', room, version: 0, data: { two: true } });
    await x!.request({ type: 'leave', room });
    await y!.request({ type: 'leave', room });
    await receiver.until(isFinished(room));
    expect(types(receiver.roomEvents(room))).toEqual([
      'room.started',
      'participant.joined',
      'participant.joined',
      'room.state.changed',
      'participant.left:left',
      'participant.left:left',
      'room.finished',
    ]);
    expect(receiver.requests.filter((d) => d.data.room === room)).toHaveLength(7);
  });
});

async function sumMetric(series: string): Promise<number> {
  let total = 0;
  for (const node of nodes) {
    if (node.process.exitCode !== null || node.process.signalCode !== null) continue;
    const value = await metric(node, series);
    if (!Number.isNaN(value)) total += value;
  }
  return total;
}
