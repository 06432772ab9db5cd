// A rolling update: three nodes, 20 rooms of 3 members spread over them, everyone signalling each
// peer 20 times a second with a sequence number, and each node restarted in turn with SIGTERM.
// The rooms must not notice: no peer-left, no peer-joined, no signal lost, duplicated or
// reordered, every participant keeps its id, and every node exits within its drain timeout.
import { afterAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignalingClient } from '../../../client/src/index.js';
import {
  createTestDatabase,
  freePort,
  killAllNodes,
  startNode,
  testRedisUrl,
  uniqueName,
  type RunningNode,
} from '../support/cluster.js';

const ROOMS = 20;
const MEMBERS = 3;
const SIGNALS_PER_SEC = 20;
const DRAIN_TIMEOUT_MS = 15_000;

afterAll(async () => {
  await killAllNodes();
});

it('restarting every node in turn is invisible to the rooms', async () => {
  const databaseUrl = await createTestDatabase();
  const common = {
    databaseUrl,
    redisUrl: testRedisUrl(),
    redisPrefix: `${uniqueName('roll')}:`,
    env: {
      RESUME_GRACE_MS: '15000',
      DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
      DRAIN_SPREAD_MS: '1000',
      RECONNECT_JITTER_MS: '500',
      // A client flushes what it held while moving in one burst; this test is about the move,
      // not about rate limits.
      RATE_LIMIT_BURST: '5000',
      // And all sixty clients share one address here, as no sixty real ones would.
      ADDRESS_BYTES_BURST: String(1 << 30),
      ADDRESS_BUS_BYTES_PER_SEC: String(1 << 30),
      ADDRESS_BUS_BYTES_BURST: String(1 << 30),
      ADDRESS_WRITES_BURST: '100000',
    },
  };
  const ports = [await freePort(), await freePort(), await freePort()];
  const nodes: RunningNode[] = [await startNode({ ...common, port: ports[0] })];
  nodes.push(...(await Promise.all([1, 2].map((i) => startNode({ ...common, port: ports[i] })))));
  const urls = ports.map((p) => `ws://127.0.0.1:${p}/ws`);

  // Member j of room r starts on node (r + j) % 3 and fails over to the next ones.
  const churn: string[] = [];
  const members: { client: SignalingClient; room: string; id: string }[] = [];
  for (let r = 0; r < ROOMS; r++) {
    const room = `roll-${r}`;
    for (let j = 0; j < MEMBERS; j++) {
      const first = (r + j) % 3;
      const client = new SignalingClient({
        url: [0, 1, 2].map((k) => urls[(first + k) % 3]!),
        WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.5, maxAttempts: Infinity },
      });
      await client.connect();
      const joined = await client.join(room, { name: `m${j}` });
      members.push({ client, room, id: joined.self.id });
    }
  }
  // Every member now knows its two peers; from here on any membership event is churn.
  for (const m of members) {
    m.client.on('peer-joined', (e) => churn.push(`peer-joined ${e.peer.id} seen by ${m.id}`));
    m.client.on('peer-left', (e) => churn.push(`peer-left ${e.peer.id} (${e.reason}) seen by ${m.id}`));
    m.client.on('joined', (e) => {
      if (e.isRejoin && (!e.resumed || e.self.id !== m.id)) churn.push(`lost its id: ${m.id}`);
    });
  }

  // What each client went through, to explain a failure.
  const t0 = performance.now();
  const timeline = new Map<string, string[]>();
  const note = (id: string, what: string) => {
    if (!timeline.has(id)) timeline.set(id, []);
    timeline.get(id)!.push(`${Math.round(performance.now() - t0)}ms ${what}`);
  };
  for (const m of members) {
    m.client.on('reconnecting', (e) => note(m.id, `reconnecting ${e.reason} in ${e.delayMs}`));
    m.client.on('disconnected', (e) => note(m.id, `disconnected ${e.code}`));
    m.client.on('connected', (e) => note(m.id, `connected to ${e.node}`));
    m.client.on('welcome', (e) => note(m.id, `welcome from ${e.node}`));
    m.client.on('joined', (e) => note(m.id, `joined ${e.room} resumed=${e.resumed}`));
  }

  // from → to → received sequence numbers; and what each sender sent.
  const received = new Map<string, number[]>();
  const sent = new Map<string, number>();
  for (const m of members) {
    m.client.on('signal', (e) => {
      const key = `${e.from}>${m.id}`;
      const seq = (e.data as { seq: number }).seq;
      const prev = received.get(key)?.at(-1) ?? -1;
      if (seq !== prev + 1) note(m.id, `got ${seq} after ${prev} from ${e.from}`);
      if (!received.has(key)) received.set(key, []);
      received.get(key)!.push((e.data as { seq: number }).seq);
    });
  }
  const peersOf = (m: (typeof members)[number]) => members.filter((o) => o.room === m.room && o !== m);
  let isSending = true;
  const timers = members.map((m) => {
    let seq = 0;
    const peers = peersOf(m);
    return setInterval(() => {
      if (!isSending) return;
      for (const p of peers) void m.client.signal(m.room, p.id, { seq }, { ack: false });
      for (const p of peers) sent.set(`${m.id}>${p.id}`, seq);
      if (seq % 20 === 0) note(m.id, `sending ${seq} (${m.client.state})`);
      seq++;
    }, 1000 / SIGNALS_PER_SEC);
  });

  // Restart each node in turn, on the same port, as a rolling update would.
  const exitMs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const code = await nodes[i]!.stop('SIGTERM');
    exitMs.push(performance.now() - started);
    expect(code).toBe(0);
    nodes[i] = await startNode({ ...common, port: ports[i] });
  }

  // Stop sending, and wait until everything sent has arrived (or the wait runs out).
  isSending = false;
  timers.forEach(clearInterval);
  const isComplete = () => [...sent].every(([key, last]) => (received.get(key)?.at(-1) ?? -1) >= last);
  for (let waited = 0; !isComplete() && waited < 15_000; waited += 100) await new Promise((r) => setTimeout(r, 100));

  for (const m of members) m.client.close();
  expect(churn).toEqual([]);
  const broken: string[] = [];
  for (const [key, last] of sent) {
    const got = received.get(key) ?? [];
    const expected = Array.from({ length: last + 1 }, (_, i) => i);
    if (got.length !== expected.length || got.some((v, i) => v !== i)) {
      const missing = expected.filter((v) => !got.includes(v));
      const dupes = got.filter((v, i) => got.indexOf(v) !== i);
      broken.push(`${key}: ${got.length}/${last + 1} received, missing ${missing.slice(0, 5)}, duplicated ${dupes.slice(0, 5)}`);
    }
  }
  if (broken.length > 0) {
    const [sender, victim] = broken[0]!.split(':')[0]!.split('>') as [string, string];
    process.stderr.write(`\n${broken[0]}\ntimeline of receiver ${victim}:\n${(timeline.get(victim) ?? []).join('\n')}\n`);
    process.stderr.write(`timeline of sender ${sender}:\n${(timeline.get(sender) ?? []).join('\n')}\n`);
    for (const n of nodes) {
      const warnings = n.logs.filter((l) => (l.level as number) >= 40).map((l) => JSON.stringify(l));
      process.stderr.write(`node ${n.id} warnings:\n${warnings.slice(0, 10).join('\n')}\n`);
    }
  }
  expect(broken).toEqual([]);
  for (const ms of exitMs) expect(ms).toBeLessThan(DRAIN_TIMEOUT_MS + 2000);
}, 180_000);
