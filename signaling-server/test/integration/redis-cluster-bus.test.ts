// RedisBus on a local Redis Cluster (3 masters, 3 replicas): rooms whose slots live on every master
// deliver to their subscribers in order, also when one turn publishes to many rooms at once; and
// when a master is killed in the middle of the traffic, the subscribers are back on every shard,
// everything whose publish resolved arrives, and gaps are reported only for the killed shard's rooms.
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PublishOutcomeUnknown } from '../../src/bus/bus.js';
import { keySlot } from '../../src/bus/key-slot.js';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { uniqueName } from '../support/cluster.js';
import { eventually } from '../support/eventually.js';
import { startRedisCluster, type LocalRedisCluster } from '../support/redis-cluster.js';

let redis: LocalRedisCluster;
let admin: Cluster;
const buses: RedisBus[] = [];
const prefix = `${uniqueName('cbus')}:`;

beforeAll(async () => {
  redis = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 });
  admin = new Cluster(redis.seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
  await admin.ping();
});

afterAll(async () => {
  await Promise.all(buses.map((b) => b.close()));
  admin?.disconnect();
  await redis?.stop();
});

type BusExtras = Partial<
  Pick<
    Parameters<typeof RedisBus.connect>[0],
    'onUnreplicated' | 'onStatus' | 'waitReplicas' | 'probeIntervalMs' | 'probeTimeoutMs' | 'onSilent'
  >
>;

async function bus(extra: BusExtras = {}, on: LocalRedisCluster = redis) {
  const b = await RedisBus.connect({
    clusterNodes: on.seeds,
    nodeId: `node-${buses.length + 1}`,
    waitReplicas: 1,
    waitTimeoutMs: 500,
    prefix,
    timeoutMs: 2000,
    retentionMs: 60_000,
    log: pino({ level: 'silent' }),
    ...extra,
  });
  buses.push(b);
  return b;
}

function collect(b: RedisBus) {
  const got = new Map<string, { payload: string; position: string }[]>();
  b.onMessage((room, payload, position) => {
    const list = got.get(room) ?? [];
    list.push({ payload, position });
    got.set(room, list);
  });
  return got;
}

const until = (check: () => boolean, what: string, ms = 20_000) =>
  eventually(
    what,
    ms,
    async () => check(),
    (ok) => ok,
    10,
  );

/** The port of the master that serves the room's slot now. */
const masterOf = (room: string, client = admin): number =>
  Number(client.slots[keySlot(`${prefix}{r:${room}}:log`)]![0]!.split(':')[1]);

/** `count` rooms named after `tag`, at least `perMaster` of them on each master. */
async function roomsOnEveryMaster(tag: string, perMaster: number, on = redis, client = admin): Promise<string[]> {
  const masters = await on.masterPorts();
  // After an earlier test's failover the admin client's map may still name the dead master.
  await new Promise((resolve) => client.refreshSlotsCache(resolve));
  const rooms: string[] = [];
  const counts = new Map(masters.map((m) => [m, 0]));
  for (let i = 0; [...counts.values()].some((c) => c < perMaster); i++) {
    if (i > 100_000) throw new Error(`no rooms on some of the masters ${masters} after ${i} names`);
    const room = `${tag}-${i}`;
    const master = masterOf(room, client);
    if (!counts.has(master) || counts.get(master)! >= perMaster) continue;
    counts.set(master, counts.get(master)! + 1);
    rooms.push(room);
  }
  return rooms;
}

it('delivers in order to the subscribers of rooms on every master, many rooms in one turn', async () => {
  const [sender, receiver, outsider] = [await bus(), await bus(), await bus()];
  const [got, gotOutsider] = [collect(receiver), collect(outsider)];
  const rooms = await roomsOnEveryMaster('spread', 10);
  for (const room of rooms) await receiver.subscribe(room);
  await outsider.subscribe('elsewhere');
  // One turn: every room's messages are batched, one pipeline per slot.
  const sent = [];
  for (let i = 0; i < 20; i++) for (const room of rooms) sent.push(sender.publish(room, `${room}:${i}`));
  const positions = await Promise.all(sent);
  await sender.publish('elsewhere', 'marker');
  await until(() => rooms.every((r) => got.get(r)?.length === 20) && gotOutsider.size === 1, 'every message');
  for (const room of rooms) {
    expect(got.get(room)!.map((m) => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `${room}:${i}`));
  }
  expect([...gotOutsider.keys()]).toEqual(['elsewhere']);
  // Each message's position is its place in the room's log: read back, it is there.
  const { entries, isComplete } = await sender.read(rooms[0]!, positions[0]!, '+');
  expect(isComplete).toBe(true);
  expect(entries.map((e) => e.payload)).toEqual(Array.from({ length: 19 }, (_, i) => `${rooms[0]}:${i + 1}`));
});

it('comes back on every shard after a master is killed mid-traffic, losing nothing whose publish resolved', async () => {
  let unreplicated = 0;
  const sender = await bus({ onUnreplicated: (n) => (unreplicated += n) });
  const receiver = await bus();
  const got = collect(receiver);
  const gaps = new Set<string>();
  receiver.onGap((room) => gaps.add(room));
  const rooms = await roomsOnEveryMaster('failover', 4);
  for (const room of rooms) await receiver.subscribe(room);
  const victim = masterOf(rooms[0]!);
  const victimRooms = rooms.filter((r) => masterOf(r) === victim);

  const resolved = new Set<string>();
  let stop = false;
  const traffic = (async () => {
    for (let i = 0; !stop; i++) {
      // Publishes to a shard whose master is dead fail until its replica takes over; that is fine.
      await Promise.allSettled(
        rooms.map((room) => sender.publish(room, `${room}:${i}`).then(() => resolved.add(`${room}:${i}`))),
      );
    }
  })();
  await until(() => resolved.size >= rooms.length * 20, 'traffic before the kill');
  const killedAt = Date.now();
  await redis.killMaster(victim);
  // Traffic goes on until every room, the killed shard's too, has published again since the kill.
  const sizeAfterFailover = resolved.size;
  await until(() => resolved.size >= sizeAfterFailover + rooms.length * 20, 'traffic after the failover');
  stop = true;
  await traffic;
  await until(() => receiver.isUp(), 'the receiver reports itself up again');
  const recoveredMs = Date.now() - killedAt;

  // Fresh messages reach the subscribers of every room, those now on the promoted replica included.
  for (const room of rooms) await sender.publish(room, `${room}:last`);
  const received = () => new Set(rooms.flatMap((r) => (got.get(r) ?? []).map((m) => m.payload)));
  await until(() => rooms.every((r) => received().has(`${r}:last`)), 'the last message of every room');
  const all = received();
  const missing = [...resolved].filter((m) => !all.has(m));
  expect(missing).toEqual([]);
  // Each message at most once per room, in log order.
  for (const room of rooms) {
    const positions = got.get(room)!.map((m) => m.position);
    expect(new Set(positions).size).toBe(positions.length);
  }
  // Only the killed shard's logs can have lost entries (written but not yet replicated).
  expect([...gaps].filter((r) => !victimRooms.includes(r))).toEqual([]);
  console.info(
    `failover: receiver up again ${recoveredMs} ms after the kill; unreplicated ${unreplicated}; resolved ${resolved.size}`,
  );
}, 60_000);

it('follows a room whose slot moves to another master: its subscribers hear it there, nothing lost', async () => {
  const [sender, receiver] = [await bus(), await bus()];
  const got = collect(receiver);
  const gaps = new Set<string>();
  receiver.onGap((room) => gaps.add(room));
  const room = (await roomsOnEveryMaster('moving', 1))[0]!;
  await receiver.subscribe(room);
  await sender.publish(room, 'before');
  await until(() => got.get(room)?.length === 1, 'the message before the move');

  // Move the room's slot as `redis-cli --cluster reshard` does: mark it, migrate its keys, hand it
  // over. Redis unsubscribes the slot's shard channels on the old master without a word to the
  // client that the bus could act on, so only the slot map tells.
  const slot = keySlot(`${prefix}{r:${room}}:log`);
  const from = masterOf(room);
  const to = (await redis.masterPorts()).find((p) => p !== from)!;
  const [source, target] = [new Redis(from), new Redis(to)];
  try {
    const [sourceId, targetId] = [await source.cluster('MYID'), await target.cluster('MYID')];
    await target.cluster('SETSLOT', slot, 'IMPORTING', sourceId);
    await source.cluster('SETSLOT', slot, 'MIGRATING', targetId);
    const keys = (await source.cluster('GETKEYSINSLOT', slot, 1000)) as string[];
    if (keys.length > 0) await source.migrate('127.0.0.1', to, '', 0, 5000, 'KEYS', ...keys);
    for (const port of await redis.masterPorts()) {
      const master = port === from ? source : port === to ? target : new Redis(port);
      await master.cluster('SETSLOT', slot, 'NODE', targetId);
      if (master !== source && master !== target) master.disconnect();
    }
  } finally {
    source.disconnect();
    target.disconnect();
  }

  // Publishes that met the moved slot mid-way failed (never logged); the bus learns the new map.
  const publishUntilLogged = async (message: string) => {
    await eventually(
      `publishing ${message}`,
      10_000,
      () =>
        sender.publish(room, message).then(
          () => true,
          () => false,
        ),
      Boolean,
      50,
    );
  };
  await publishUntilLogged('after');
  await until(() => got.get(room)?.some((m) => m.payload === 'after') ?? false, 'the message after the move');
  await until(() => receiver.isUp(), 'the receiver reports itself up');
  await publishUntilLogged('later');
  await until(() => got.get(room)?.at(-1)?.payload === 'later', 'a later message');
  expect(got.get(room)!.map((m) => m.payload)).toEqual(['before', 'after', 'later']);
  await new Promise((resolve) => admin.refreshSlotsCache(resolve));
  expect(masterOf(room)).toBe(to);
  expect(gaps).toEqual(new Set());
}, 60_000);

it('heals the rooms of a master that restarted empty, with no replica to take over, and no other room', async () => {
  const bare = await startRedisCluster({ masters: 3, replicasPerMaster: 0, nodeTimeoutMs: 1000 });
  const bareAdmin = new Cluster(bare.seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
  let wentDown = false;
  const [sender, receiver] = [
    await bus({ waitReplicas: 0 }, bare),
    await bus({ waitReplicas: 0, onStatus: (up) => (wentDown ||= !up) }, bare),
  ];
  try {
    const got = collect(receiver);
    const gaps = new Set<string>();
    receiver.onGap((room) => gaps.add(room));
    const rooms = await roomsOnEveryMaster('restart', 3, bare, bareAdmin);
    for (const room of rooms) await receiver.subscribe(room);
    for (const room of rooms) await sender.publish(room, 'before');
    await until(() => rooms.every((r) => got.get(r)?.length === 1), 'every message before the restart');
    const victim = masterOf(rooms[0]!, bareAdmin);

    // Its logs and positions are gone: read back, they look like rooms where nothing happened.
    await bare.restartMaster(victim);
    await until(() => wentDown && receiver.isUp(), 'the receiver reports itself up again');
    expect(gaps).toEqual(new Set(rooms.filter((r) => masterOf(r, bareAdmin) === victim)));

    for (const room of rooms) {
      await eventually(
        `publishing to ${room}`,
        10_000,
        () =>
          sender.publish(room, 'after').then(
            () => true,
            () => false,
          ),
        Boolean,
        50,
      );
    }
    await until(() => rooms.every((r) => got.get(r)?.length === 2), 'every message after the restart');
    for (const room of rooms) expect(got.get(room)!.map((m) => m.payload)).toEqual(['before', 'after']);
  } finally {
    await Promise.all([sender, receiver].map((b) => b.close()));
    buses.splice(buses.indexOf(sender), 2);
    bareAdmin.disconnect();
    await bare.stop();
  }
}, 90_000);

/**
 * Runs `test` on a cluster of its own with no replicas and a long node timeout: the cluster itself
 * takes a paused master for alive, so only the connection probe (REDIS_PROBE_TIMEOUT_MS) can tell.
 */
async function onClusterThatCannotTell(
  test: (quiet: LocalRedisCluster, quietAdmin: Cluster, probe: BusExtras) => Promise<void>,
): Promise<void> {
  const quiet = await startRedisCluster({ masters: 3, replicasPerMaster: 0, nodeTimeoutMs: 60_000 });
  const quietAdmin = new Cluster(quiet.seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
  const probe = { probeIntervalMs: 500, probeTimeoutMs: 1000, waitReplicas: 0 } as const;
  const started = buses.length;
  try {
    await test(quiet, quietAdmin, probe);
  } finally {
    const mine = buses.splice(started);
    await Promise.all(mine.map((b) => b.close()));
    quietAdmin.disconnect();
    await quiet.stop();
  }
}

it('finds a shard subscriber whose master stops answering without closing anything, and is back once it answers again', async () => {
  await onClusterThatCannotTell(async (quiet, quietAdmin, probe) => {
    const silent: string[] = [];
    const [sender, receiver] = [
      await bus({ waitReplicas: 0 }, quiet),
      await bus({ ...probe, onSilent: (connection) => silent.push(connection) }, quiet),
    ];
    const got = collect(receiver);
    const [room] = await roomsOnEveryMaster('paused', 1, quiet, quietAdmin);
    await receiver.subscribe(room!);
    await sender.publish(room!, 'before');
    await until(() => got.get(room!)?.length === 1, 'the message before the pause');
    const victim = masterOf(room!, quietAdmin);
    quiet.pause(victim);
    // Its publisher's connection to that master is probed as well and may be found first.
    await until(() => !receiver.isUp() && silent.includes('ssub'), 'the receiver down, its shard subscriber found silent', 5000);
    quiet.resume(victim);
    await until(() => receiver.isUp(), 'the receiver up again');
    await sender.publish(room!, 'after');
    await until(() => got.get(room!)?.length === 2, 'the message after the pause');
    expect(got.get(room!)!.map((m) => m.payload)).toEqual(['before', 'after']);
  });
}, 90_000);

it('finds a publisher connection whose master stops answering without closing anything: down, failing its publishes, then delivering every acked one', async () => {
  await onClusterThatCannotTell(async (quiet, quietAdmin, probe) => {
    const silent: string[] = [];
    const sender = await bus({ ...probe, onSilent: (connection) => silent.push(connection) }, quiet);
    // Not probed: its own connections to the paused master carry on once it answers again.
    const receiver = await bus({ waitReplicas: 0 }, quiet);
    const got = collect(receiver);
    const [room] = await roomsOnEveryMaster('pub-paused', 1, quiet, quietAdmin);
    await receiver.subscribe(room!);
    await sender.publish(room!, 'before');
    await until(() => got.get(room!)?.length === 1, 'the message before the pause');
    const victim = masterOf(room!, quietAdmin);

    // A publish every 20 ms throughout, each one either acked (resolved) or failed.
    const acked: string[] = [];
    const failed = new Map<string, Error>();
    const settling: Promise<unknown>[] = [];
    let sent = 0;
    const traffic = setInterval(() => {
      const message = `m${sent++}`;
      settling.push(
        sender.publish(room!, message).then(
          () => acked.push(message),
          (err: Error) => failed.set(message, err),
        ),
      );
    }, 20);
    try {
      await until(() => acked.length >= 5, 'publishes before the pause');
      const pausedAt = Date.now();
      quiet.pause(victim);
      // Within the probe's interval and deadline (1.5 s) and a margin for a busy machine.
      await until(() => !sender.isUp(), 'the sender reports itself down', 4000);
      const downMs = Date.now() - pausedAt;
      expect(silent).toContain('pub');
      await until(() => failed.size > 0, 'a publish failing during the pause', 5000);
      quiet.resume(victim);
      await until(() => sender.isUp(), 'the sender up again');
      const ackedBeforeHeal = acked.length;
      await until(() => acked.length >= ackedBeforeHeal + 5, 'publishes acked after the pause');
      console.info(`publisher probe: sender down ${downMs} ms after the pause; ${failed.size} of ${sent} publishes failed`);
    } finally {
      clearInterval(traffic);
    }
    // None is left hanging: every publish was acked or reported as failed.
    await Promise.all(settling);
    expect(acked.length + failed.size).toBe(sent);

    await sender.publish(room!, 'last');
    await until(() => got.get(room!)?.at(-1)?.payload === 'last', 'the last message');
    const delivered = got.get(room!)!.map((m) => m.payload);
    // Every acked message, once, in the order it was published.
    expect(new Set(delivered).size).toBe(delivered.length);
    const isAcked = new Set(acked);
    expect(delivered.filter((m) => isAcked.has(m))).toEqual(acked);
    // A failed publish may have run only if the bus said it might (it was sent before the pause).
    const failedButDelivered = delivered.filter((m) => failed.has(m));
    expect(failedButDelivered.filter((m) => !(failed.get(m) instanceof PublishOutcomeUnknown))).toEqual([]);
  });
}, 60_000);
