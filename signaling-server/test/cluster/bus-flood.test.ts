// A flood of large broadcasts from many sockets of one address is cut at the address's bus budget
// (ADDRESS_BUS_BYTES_PER_SEC) before it reaches Redis: the nodes' Redis subscribers are never cut
// by Redis's pub/sub output-buffer limit, and a bystander pair across two nodes keeps every signal.
// Redis here is a private one whose limit is scaled down with the budget (1 MiB hard against
// 128 KiB/s), so a flood that got through would overflow it within the test's few seconds.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { killAllNodes, metric, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../support/throwaway-redis.js';

const BUS_BYTES_PER_SEC = 128 * 1024;
const BUS_BYTES_BURST = 512 * 1024;
const FLOODERS = 12;
const FLOOD_MS = 3000;
const PAYLOAD = 'x'.repeat(60 * 1024);

const clients = new ClientTracker();
let redis: ThrowawayRedis;
let admin: Redis;
let a: RunningNode;
let b: RunningNode;

beforeAll(async () => {
  redis = await startThrowawayRedis();
  admin = new Redis(redis.url);
  // Cut a subscriber whose unread output passes 1 MiB, or stays over 256 KiB for 5 s.
  await admin.config('SET', 'client-output-buffer-limit', 'pubsub 1mb 256kb 5');
  const cluster = await startCluster(2, {
    redisUrl: redis.url,
    env: {
      ADDRESS_BUS_BYTES_PER_SEC: String(BUS_BYTES_PER_SEC),
      ADDRESS_BUS_BYTES_BURST: String(BUS_BYTES_BURST),
      // Only the bus budget stands in the flood's way.
      CONNECTION_BYTES_PER_SEC: String(1 << 30),
      CONNECTION_BYTES_BURST: String(1 << 30),
      ADDRESS_BYTES_PER_SEC: String(1 << 30),
      ADDRESS_BYTES_BURST: String(1 << 30),
      RATE_LIMIT_PER_SEC: '100000',
      RATE_LIMIT_BURST: '100000',
      RATE_LIMIT_STRIKES: '100000000',
    },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
  admin.disconnect();
  await redis.stop();
});

/** Ids of the nodes' subscriber connections (named by RedisBus), sorted. */
async function subscriberIds(): Promise<string[]> {
  const list = (await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
  return list
    .split('\n')
    .filter((line) => /\bname=\S+:sub\b/.test(line)) // each node names its subscriber <node id>:sub
    .map((line) => /\bid=(\d+)/.exec(line)![1]!)
    .sort();
}

it('cuts a 64 KiB broadcast flood from one address while a bystander pair on two nodes keeps every signal', async () => {
  const floodRoom = newRoom('flood');
  const quietRoom = newRoom('quiet');
  // A reader of the flood on the other node, so that node's subscriber carries it; it counts
  // frames without parsing them, to keep up.
  const reader = await clients.connect(b, '', undefined, '127.0.0.20');
  await reader.join(floodRoom);
  let floodFramesRead = 0;
  reader.ws.on('message', (data: Buffer) => (floodFramesRead += data.length > 60 * 1024 ? 1 : 0));

  const sender = await clients.connect(a, '', undefined, '127.0.0.21');
  const receiver = await clients.connect(b, '', undefined, '127.0.0.22');
  const { self: to } = await receiver.join(quietRoom);
  await sender.join(quietRoom);
  const before = await subscriberIds();
  expect(before).toHaveLength(2);

  const flooders = await Promise.all(Array.from({ length: FLOODERS }, () => clients.connect(a, '', undefined, '127.0.0.23')));
  await Promise.all(flooders.map((f) => f.join(floodRoom)));
  let refused = 0;
  for (const f of flooders) f.ws.on('message', (data: Buffer) => (refused += data.toString().includes('"rate-limited"') ? 1 : 0));
  const frame = JSON.stringify({ type: 'broadcast', room: floodRoom, data: PAYLOAD });
  const started = performance.now();
  const flooding = Promise.all(
    flooders.map(async (f) => {
      while (performance.now() - started < FLOOD_MS) {
        // As fast as the socket drains, never more than 1 MiB queued locally; yielding after each
        // frame keeps the bystander's timer running in this same process.
        if (f.ws.bufferedAmount < 1024 * 1024) f.ws.send(frame);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }),
  );

  // The bystander signals through the whole flood, across the nodes, on a schedule of its own.
  const sent: number[] = [];
  const acks: Promise<unknown>[] = [];
  while (performance.now() - started < FLOOD_MS) {
    const n = sent.length;
    sent.push(n);
    acks.push(sender.request({ type: 'signal', room: quietRoom, to: to.id, data: n }, 15_000));
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await flooding;
  const elapsedS = (performance.now() - started) / 1000;
  for (const ack of await Promise.all(acks)) expect(ack).toMatchObject({ type: 'ack' });
  await receiver.waitForType('signal', (m) => m.data === sent.at(-1), 15_000);
  const got = receiver.seen((m) => m.type === 'signal').map((m) => (m as { data: number }).data);
  expect(got).toEqual(sent);
  expect(sent.length).toBeGreaterThan(10);

  // Neither node's subscriber was cut by Redis (and reconnected under a new id). Without the
  // budget, the flooding node's own subscriber, which gets every broadcast back, is the first to go.
  expect(await subscriberIds()).toEqual(before);
  expect(a.logs.concat(b.logs).filter((l) => /redis/i.test(String(l.msg)) && Number(l.level) >= 40)).toEqual([]);
  // The flood was cut at the budget: refusals came back, and what reached the other node is
  // within the burst plus the rate (and a frame of slack per flooder).
  expect(refused).toBeGreaterThan(0);
  expect(await metric(a, 'signaling_dropped_total{reason="bus-rate"}')).toBeGreaterThan(0);
  const budgetFrames = (BUS_BYTES_BURST + BUS_BYTES_PER_SEC * (elapsedS + 1)) / PAYLOAD.length + FLOODERS;
  expect(floodFramesRead).toBeLessThanOrEqual(budgetFrames);
});
