// Two nodes on a local Redis Cluster (3 masters, 3 replicas), clients in rooms spread over every
// shard signalling each other across the nodes, and one master killed with SIGKILL in the middle:
// both nodes report themselves unready, then ready again once the replica took over; every signal
// a node acked reaches its addressee in order, and joins after the failover are seen everywhere,
// in rooms of every shard. Run by `npm run test:redis-cluster` only.
import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { keySlot } from '../../src/bus/key-slot.js';
import { Member, untilAllArrived, verify } from '../support/acked-signals.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { killAllNodes, startCluster } from '../support/cluster.js';
import { eventually } from '../support/eventually.js';
import { startRedisCluster, type LocalRedisCluster } from '../support/redis-cluster.js';

const clients = new ClientTracker();
let redis: LocalRedisCluster;
let admin: Cluster;

beforeAll(async () => {
  redis = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 });
  admin = new Cluster(redis.seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
  await admin.ping();
});

afterEach(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

const readiness = (url: string) =>
  fetch(`${url}/readyz`, { signal: AbortSignal.timeout(3000) }).then(
    (r) => r.status,
    () => 0,
  );

it('a master killed mid-traffic: the nodes recover, every acked signal arrives, and views stay whole on every shard', async () => {
  const { nodes, redisPrefix } = await startCluster(2, {
    redisUrl: '',
    env: { REDIS_CLUSTER_NODES: redis.seeds.join(','), RESUME_GRACE_MS: '15000' },
  });
  const masterOf = (room: string) => Number(admin.slots[keySlot(`${redisPrefix}{r:${room}}:log`)]![0]!.split(':')[1]);
  // Two rooms on each master, three members each, spread over both nodes.
  const masters = await redis.masterPorts();
  const rooms: string[] = [];
  while (masters.some((m) => rooms.filter((r) => masterOf(r) === m).length < 2)) {
    const room = newRoom('rcf');
    if (rooms.filter((r) => masterOf(r) === masterOf(room)).length < 2) rooms.push(room);
  }
  const members: Member[] = [];
  for (const room of rooms) {
    for (let j = 0; j < 3; j++) {
      const m = new Member(room, clients);
      await m.connect(nodes[j % 2]!);
      members.push(m);
    }
  }
  // Each member has seen the ones who joined after it; from here on no one joins or leaves.
  await eventually(
    'every peer-joined of the set-up',
    10_000,
    async () => members.every((m, i) => m.churn.length === 2 - (i % 3)),
    (ok) => ok,
    20,
  );
  for (const m of members) m.churn.length = 0;
  const peersOf = (m: Member) => members.filter((o) => o.room === m.room && o !== m);
  const timer = setInterval(() => members.forEach((m) => m.signal(peersOf(m))), 50);
  const acked = () => members.reduce((n, m) => n + [...m.acked.values()].flat().length, 0);
  try {
    await eventually(
      'signals acked before the kill',
      10_000,
      async () => acked(),
      (n) => n > 200,
    );
    const victim = masterOf(rooms[0]!);
    const killedAt = Date.now();
    await redis.killMaster(victim);
    // The bus of each node lost its shard subscriber: unready until it is back and read back.
    await eventually(
      '/readyz 200 on both nodes after the failover',
      15_000,
      () => Promise.all(nodes.map((n) => readiness(n.httpUrl))),
      (codes) => codes.every((c) => c === 200),
      50,
    );
    const recoveredMs = Date.now() - killedAt;
    // Traffic goes on for a while in every room, the killed shard's included.
    const ackedAfter = acked();
    await eventually(
      'signals acked after the failover',
      15_000,
      async () => acked(),
      (n) => n > ackedAfter + 300,
    );
    clearInterval(timer);
    await untilAllArrived(members, 15_000);
    const { broken, duplicates } = verify(members);
    expect(broken).toEqual([]);
    // Once: a publish is never retried behind later ones, and read-back skips what arrived live.
    expect(duplicates).toBe(0);
    expect(members.flatMap((m) => m.churn)).toEqual([]);

    // Views: a late joiner in every room, on either node, is seen by each member.
    for (const [i, room] of rooms.entries()) {
      const late = new Member(room, clients);
      await late.connect(nodes[i % 2]!);
      await Promise.all(
        members
          .filter((m) => m.room === room)
          .map((m) => m.client.waitForType('peer-joined', (e) => e.peer.id === late.id, 5000)),
      );
    }
    console.info(
      `redis cluster failover: both nodes ready ${recoveredMs} ms after the kill; ${acked()} signals acked, ${duplicates} duplicates`,
    );
  } finally {
    clearInterval(timer);
  }
}, 90_000);
