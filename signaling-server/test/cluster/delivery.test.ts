// "An ack is a promise": every signal a node acknowledged reaches its recipient, in order and once,
// whatever happens between the two ends. Real node processes, Postgres and Redis; each test breaks
// one thing a production cluster sees every week: a node that exits before its clients come back,
// a node killed with SIGKILL, subscriber connections cut by Redis, a Claim that cannot be published,
// a resume whose `joined` is lost on the way.
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import {
  createTestDatabase,
  freePort,
  killAllNodes,
  metric,
  startNode,
  testRedisUrl,
  uniqueName,
  type RunningNode,
} from '../support/cluster.js';
import { Member, untilAllArrived, verify } from '../support/acked-signals.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { startThrowawayRedis } from '../support/throwaway-redis.js';

const clients = new ClientTracker();

afterEach(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

async function threeNodes(env: Record<string, string>, redisUrl = testRedisUrl()) {
  const common = { databaseUrl: await createTestDatabase(), redisUrl, redisPrefix: `${uniqueName('dl')}:`, env };
  const ports = [await freePort(), await freePort(), await freePort()];
  const nodes = [await startNode({ ...common, port: ports[0] })];
  nodes.push(...(await Promise.all([1, 2].map((i) => startNode({ ...common, port: ports[i] })))));
  return { nodes, restart: (i: number) => startNode({ ...common, port: ports[i] }) };
}

/** Rooms of three, member j of room r on node (r + j) % 3, signalling every peer 20 times a second. */
async function signallingRooms(nodes: RunningNode[], rooms: number) {
  const members: Member[] = [];
  for (let r = 0; r < rooms; r++) {
    const room = newRoom('dl');
    for (let j = 0; j < 3; j++) {
      const m = new Member(room, clients);
      await m.connect(nodes[(r + j) % 3]!);
      members.push(m);
    }
  }
  await new Promise((r) => setTimeout(r, 200)); // the last peer-joined events land before churn counts
  for (const m of members) m.churn.length = 0;
  const peersOf = (m: Member) => members.filter((o) => o.room === m.room && o !== m);
  const timer = setInterval(() => members.forEach((m) => m.signal(peersOf(m))), 50);
  return { members, stop: () => clearInterval(timer) };
}

it('a rolling restart whose clients come back only after their old node has exited loses nothing', async () => {
  const { nodes, restart } = await threeNodes({ RESUME_GRACE_MS: '15000', DRAIN_TIMEOUT_MS: '3000', DRAIN_SPREAD_MS: '500' });
  const { members, stop } = await signallingRooms(nodes, 6);
  for (let i = 0; i < 3; i++) {
    const leaving = members.filter((m) => m.client.welcome.node === nodes[i]!.id);
    expect(await nodes[i]!.stop('SIGTERM')).toBe(0);
    // Well inside the grace, but only once the node they were on is gone.
    await new Promise((r) => setTimeout(r, 500));
    await Promise.all(leaving.map((m) => m.connect(nodes[(i + 1) % 3]!)));
    nodes[i] = await restart(i);
  }
  await new Promise((r) => setTimeout(r, 500));
  stop();
  await untilAllArrived(members);
  const { broken, duplicates } = verify(members);
  expect(broken).toEqual([]);
  expect(duplicates).toBe(0);
  expect(members.flatMap((m) => m.churn)).toEqual([]);
  expect(members.reduce((n, m) => n + [...m.acked.values()].flat().length, 0)).toBeGreaterThan(1000);
}, 120_000);

it('a node killed with SIGKILL loses no acked signal: its clients resume elsewhere and get every one', async () => {
  const { nodes } = await threeNodes({ RESUME_GRACE_MS: '15000', NODE_HEARTBEAT_MS: '5000' });
  const { members, stop } = await signallingRooms(nodes, 6);
  await new Promise((r) => setTimeout(r, 1000));
  const victims = members.filter((m) => m.client.welcome.node === nodes[0]!.id);
  await nodes[0]!.kill();
  // Clients reconnect at once, before the cluster has judged the node dead.
  await Promise.all(victims.map((m) => m.client.closed.then(() => m.connect(nodes[1]!))));
  await new Promise((r) => setTimeout(r, 1500));
  stop();
  await untilAllArrived(members);
  const { broken, duplicates } = verify(members);
  expect(broken).toEqual([]);
  // At least once: only what the dead node delivered after its last checkpoint (250 ms) comes twice.
  const perPairPerCheckpoint = 20 * 0.25 + 2;
  expect(duplicates).toBeLessThanOrEqual(victims.length * 2 * perPairPerCheckpoint);
  expect(members.flatMap((m) => m.churn)).toEqual([]);
}, 120_000);

it('with subscriber connections killed for 1.5 s, every acked signal arrives and a join is seen everywhere within 2 s', async () => {
  const redis = await startThrowawayRedis();
  const admin = new Redis(redis.url);
  try {
    const common = { databaseUrl: await createTestDatabase(), redisUrl: redis.url, redisPrefix: 'kill:' };
    const [one, two] = [await startNode(common), await startNode(common)];
    const room = newRoom('kill');
    const alice = new Member(room, clients);
    await alice.connect(one);
    const carol = new Member(room, clients);
    await carol.connect(two);
    const bob = new Member(room, clients);

    let isKilling = true;
    const killing = (async () => {
      while (isKilling) {
        await admin.client('KILL', 'TYPE', 'pubsub');
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const started = Date.now();
    // bob joins on node two while the subscribers are cut again and again; alice signals him.
    for (;;) {
      try {
        await bob.connect(two);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (let sent = 0; sent < 20;) {
      const before = alice.acked.get(bob.id)?.length ?? 0;
      alice.signal([bob]);
      await new Promise((r) => setTimeout(r, 60));
      if ((alice.acked.get(bob.id)?.length ?? 0) > before) sent++;
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 1500 - (Date.now() - started))));
    isKilling = false;
    await killing;
    const lastKill = Date.now();

    await alice.client.waitForType('peer-joined', (e) => e.peer.id === bob.id, 2000);
    expect(Date.now() - lastKill).toBeLessThan(2000);
    expect(await alice.client.request({ type: 'signal', room, to: bob.id, data: { seq: 1e6 } })).toMatchObject({ type: 'ack' });
    await untilAllArrived([alice, bob, carol], 5000);
    expect(verify([alice, bob, carol]).broken).toEqual([]);
    expect(alice.acked.get(bob.id)!.length).toBeGreaterThanOrEqual(20);
  } finally {
    admin.disconnect();
    await killAllNodes();
    await redis.stop();
  }
}, 60_000);

it('a resume whose Claim cannot be published is refused, and the retry with the same token hears everything', async () => {
  const redis = await startThrowawayRedis();
  try {
    const common = { databaseUrl: await createTestDatabase(), redisUrl: redis.url, redisPrefix: 'claim:' };
    const [one, two] = [await startNode(common), await startNode(common)];
    const room = newRoom('claim');
    const [alice, bob, carol] = [new Member(room, clients), new Member(room, clients), new Member(room, clients)];
    await alice.connect(one);
    await bob.connect(one);
    await carol.connect(two); // keeps node two subscribed to the room
    alice.signal([bob]);
    // (A frame the node wrote to a connection that then breaks is lost with it: no client acks.)
    while ((bob.received.get(alice.id)?.length ?? 0) < 1) await new Promise((r) => setTimeout(r, 20));
    bob.client.drop();
    await bob.client.closed;

    await redis.stop();
    // Postgres takes the resume; the Claim marker cannot go out.
    const attempt = await clients.connect(two);
    const reply = await attempt.request({ type: 'join', room, resume: bob.resume });
    await redis.start();
    if (reply.type === 'joined') throw new Error('a resume whose Claim was not published must not answer joined');
    expect(reply).toMatchObject({ type: 'error', code: 'unavailable' });
    await new Promise((r) => setTimeout(r, 1500)); // the nodes reconnect to Redis
    alice.signal([bob]);
    await bob.connect(two); // same token
    alice.signal([bob]);
    await untilAllArrived([alice, bob]);
    expect(verify([alice, bob]).broken).toEqual([]);
    expect(alice.acked.get(bob.id)!.length).toBeGreaterThanOrEqual(2);
  } finally {
    await killAllNodes();
    await redis.stop();
  }
}, 60_000);

it('a resume whose connection drops before joined can be retried with the same token on another node', async () => {
  const common = { databaseUrl: await createTestDatabase(), redisUrl: testRedisUrl(), redisPrefix: `${uniqueName('retry')}:` };
  const [one, two] = [await startNode(common), await startNode(common)];
  const room = newRoom('retry');
  const [alice, bob] = [new Member(room, clients), new Member(room, clients)];
  await alice.connect(one);
  await bob.connect(one);
  await alice.client.waitForType('peer-joined', (e) => e.peer.id === bob.id);
  alice.churn.length = 0;
  bob.client.drop();
  await bob.client.closed;
  alice.signal([bob]);

  const lost = await clients.connect(two);
  lost.send({ type: 'join', room, resume: bob.resume, id: 'lost' });
  lost.drop();
  await lost.closed;
  alice.signal([bob]);
  // The node recorded that connection's end (a retry while it still looks live would be refused).
  const db = new pg.Client({ connectionString: common.databaseUrl });
  await db.connect();
  try {
    for (let i = 0; i < 100; i++) {
      const { rows } = await db.query<{ status: string; epoch: number }>('SELECT status, epoch FROM participants WHERE id = $1', [
        bob.id,
      ]);
      if (rows[0]?.status === 'disconnected' && rows[0].epoch === 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await db.end();
  }
  await bob.connect(one); // the same token again; throws if the id changed
  alice.signal([bob]);
  await untilAllArrived([alice, bob]);
  expect(verify([alice, bob]).broken).toEqual([]);
  expect(alice.churn).toEqual([]);
}, 60_000);

it('a node that missed a join the log no longer holds heals its view from the database', async () => {
  const redis = await startThrowawayRedis();
  const admin = new Redis(redis.url);
  try {
    const common = { databaseUrl: await createTestDatabase(), redisUrl: redis.url, redisPrefix: 'heal:' };
    const [one, two] = [await startNode({ ...common, nodeId: 'heal-one' }), await startNode({ ...common, nodeId: 'heal-two' })];
    const room = newRoom('heal');
    const [alice, carol, bob] = [new Member(room, clients), new Member(room, clients), new Member(room, clients)];
    await alice.connect(one);
    await carol.connect(two);
    await alice.client.waitForType('peer-joined', (e) => e.peer.id === carol.id);

    // node one's subscriber is cut again and again while bob joins on node two...
    let isKilling = true;
    const killing = (async () => {
      while (isKilling) {
        const list = await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub');
        const id = /id=(\d+) .*name=heal-one:sub/.exec(String(list))?.[1];
        if (id) await admin.client('KILL', 'ID', id);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await bob.connect(two);
    await carol.client.waitForType('peer-joined', (e) => e.peer.id === bob.id);
    // ...and the room's log is lost before node one could read it back.
    await admin.del(`heal:{r:${room}}:log`);
    isKilling = false;
    await killing;

    const seen = await alice.client.waitForType('peer-joined', (e) => e.peer.id === bob.id, 5000);
    expect(seen.peer.id).toBe(bob.id);
    expect(await alice.client.request({ type: 'signal', room, to: bob.id, data: { seq: 0 } })).toMatchObject({ type: 'ack' });
    expect(await metric(one, 'signaling_view_resyncs_total{outcome="healed"}')).toBeGreaterThan(0);
  } finally {
    admin.disconnect();
    await killAllNodes();
    await redis.stop();
  }
}, 60_000);

it('a signal reaches only the node that holds its addressee, across a resume too, each once and in order', async () => {
  const { nodes } = await threeNodes({ RESUME_GRACE_MS: '15000' });
  const room = newRoom('route');
  const [sender, addressee, bystander] = [new Member(room, clients), new Member(room, clients), new Member(room, clients)];
  await sender.connect(nodes[0]!);
  await addressee.connect(nodes[1]!);
  await bystander.connect(nodes[2]!);
  // A series appears with its first increment.
  const signalsReceived = async (i: number) => (await metric(nodes[i]!, 'signaling_bus_received_total{kind="signal"}')) || 0;
  const before = await Promise.all([0, 1, 2].map(signalsReceived));

  const acks = () => sender.acked.get(addressee.id)?.length ?? 0;
  const untilAcked = async (n: number) => {
    while (acks() < n) await new Promise((r) => setTimeout(r, 20));
  };
  for (let i = 0; i < 40; i++) sender.signal([addressee]);
  await untilAcked(40);
  await untilAllArrived([sender, addressee]);
  expect(verify([sender, addressee]).broken).toEqual([]);
  expect((await signalsReceived(1)) - before[1]!).toBe(40);
  expect((await signalsReceived(2)) - before[2]!).toBe(0);

  // The addressee moves to the bystander's node while signals keep coming: the ones after its
  // Claim go to that node alone, the ones before it are read back there from the room's log.
  const timer = setInterval(() => sender.signal([addressee]), 10);
  addressee.client.ws.terminate();
  await addressee.client.closed;
  await addressee.connect(nodes[2]!);
  await new Promise((r) => setTimeout(r, 300));
  clearInterval(timer);
  const acked = acks();
  const afterMove = await Promise.all([0, 1, 2].map(signalsReceived));
  for (let i = 0; i < 20; i++) sender.signal([addressee]);
  await untilAcked(acked + 20);
  await untilAllArrived([sender, addressee]);
  const { broken, duplicates } = verify([sender, addressee]);
  expect(broken).toEqual([]);
  expect(duplicates).toBe(0);
  expect((await signalsReceived(2)) - afterMove[2]!).toBe(20);
  expect((await signalsReceived(1)) - afterMove[1]!).toBe(0);
  expect(await signalsReceived(0)).toBe(before[0]);
  expect([...sender.churn, ...bystander.churn].filter((c) => c.startsWith('peer-left'))).toEqual([]);
}, 60_000);
