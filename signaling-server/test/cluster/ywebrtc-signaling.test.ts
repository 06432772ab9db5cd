// y-webrtc's signaling protocol on two nodes, spoken by raw WebSocket clients: a publish reaches
// every subscriber of its topic on either node (the sender too), an unsubscribe stops it, and bad
// input is ignored and counted, or closed when it is a flood, as y-webrtc's clients expect.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import WebSocket from 'ws';
import { killAllNodes, metric, startCluster, type RunningNode } from '../support/cluster.js';
import { eventually } from '../support/eventually.js';
import { ADMIN_API_KEYS, READ_KEY, callApi } from '../support/operator-api.js';

const PATH = '/y-webrtc';
let a: RunningNode;
let b: RunningNode;
const opened: YClient[] = [];

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: {
      YWEBRTC_PATH: PATH,
      MAX_MESSAGE_BYTES: '4096',
      MAX_CONNECTIONS_PER_IP: '6',
      RATE_LIMIT_PER_SEC: '50',
      RATE_LIMIT_BURST: '600',
      RATE_LIMIT_STRIKES: '20',
      ADMIN_API_KEYS,
      NODE_HEARTBEAT_MS: '500',
    },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  await killAllNodes();
});

/** A y-webrtc signaling connection that keeps what it receives and awaits messages by predicate. */
class YClient {
  readonly received: Record<string, unknown>[] = [];
  private waiters: { isMatch: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }[] = [];
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as Record<string, unknown>;
      this.received.push(msg);
      this.waiters = this.waiters.filter((w) => !(w.isMatch(msg) && (w.resolve(msg), true)));
    });
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  }

  static async connect(node: RunningNode): Promise<YClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}${PATH}`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const client = new YClient(ws);
    opened.push(client);
    return client;
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  next(isMatch: (m: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const found = this.received.find(isMatch);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching y-webrtc message in time')), timeoutMs);
      this.waiters.push({
        isMatch,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Everything the node sent before this resolves has arrived: frames to one socket keep their order. */
  async roundTrip(): Promise<void> {
    const seen = this.received.length;
    this.send({ type: 'ping' });
    await this.next((m, i = this.received.indexOf(m)) => m.type === 'pong' && i >= seen);
  }

  close(): Promise<number> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }
}

const publishOf = (topic: string, data: unknown) => (m: Record<string, unknown>) =>
  m.type === 'publish' && m.topic === topic && JSON.stringify(m.data) === JSON.stringify(data);

/** Subscribes and waits until the node has the subscription in place on the bus. */
async function subscribed(client: YClient, topics: string[]): Promise<void> {
  client.send({ type: 'subscribe', topics });
  // The client's own publish comes back once its subscription is live (a publish waits for it).
  for (const topic of topics) {
    client.send({ type: 'publish', topic, data: { probe: topic } });
    await client.next(publishOf(topic, { probe: topic }));
  }
}

it('answers ping with pong', async () => {
  const client = await YClient.connect(a);
  client.send({ type: 'ping' });
  expect(await client.next((m) => m.type === 'pong')).toEqual({ type: 'pong' });
});

it('relays a publish on one node to the subscribers on both nodes, the sender too, as it was sent', async () => {
  const onA = await YClient.connect(a);
  const onB = await YClient.connect(b);
  await subscribed(onA, ['doc-1']);
  await subscribed(onB, ['doc-1']);
  const sent = { type: 'publish', topic: 'doc-1', data: { type: 'announce', from: 'peer-b' }, extra: [1, 'two'] };
  onB.send(sent);
  expect(await onA.next(publishOf('doc-1', sent.data))).toEqual(sent);
  expect(await onB.next(publishOf('doc-1', sent.data))).toEqual(sent);
});

it('sends nothing of a topic to a connection that is not subscribed to it', async () => {
  const subscriber = await YClient.connect(a);
  const other = await YClient.connect(a);
  const publisher = await YClient.connect(b);
  await subscribed(subscriber, ['doc-2']);
  await subscribed(other, ['doc-3']);
  // A publisher need not subscribe to the topic it publishes to.
  publisher.send({ type: 'publish', topic: 'doc-2', data: 'for doc-2' });
  await subscriber.next(publishOf('doc-2', 'for doc-2'));
  await other.roundTrip();
  await publisher.roundTrip();
  expect(other.received.filter((m) => m.topic === 'doc-2')).toEqual([]);
  expect(publisher.received.filter((m) => m.type === 'publish')).toEqual([]);
});

it('stops relaying a topic to a connection that unsubscribed from it', async () => {
  const leaving = await YClient.connect(a);
  const staying = await YClient.connect(a);
  const publisher = await YClient.connect(b);
  await subscribed(leaving, ['doc-4']);
  await subscribed(staying, ['doc-4']);
  leaving.send({ type: 'unsubscribe', topics: ['doc-4'] });
  await leaving.roundTrip();
  publisher.send({ type: 'publish', topic: 'doc-4', data: 'after the unsubscribe' });
  // Both are on node A: had `leaving` been sent it, it would have been before its next pong.
  await staying.next(publishOf('doc-4', 'after the unsubscribe'));
  await leaving.roundTrip();
  expect(leaving.received.filter((m) => m.data === 'after the unsubscribe')).toEqual([]);
});

it('ignores and counts bad input, keeps the connection, and leaks nothing to other topics', async () => {
  const invalid = 'signaling_compat_messages_received_total{protocol="y-webrtc",type="invalid"}';
  const unknown = 'signaling_compat_messages_received_total{protocol="y-webrtc",type="unknown"}';
  const invalidBefore = (await metric(a, invalid)) || 0;
  const unknownBefore = (await metric(a, unknown)) || 0;
  const bystander = await YClient.connect(a);
  await subscribed(bystander, ['private-doc']);
  const hostile = await YClient.connect(a);
  const bad = [
    'not json',
    '{"type":"publish"',
    'null',
    '42',
    '"publish"',
    '[]',
    '{}',
    { type: 'publish' },
    { type: 'publish', topic: 7, data: 'x' },
    { type: 'publish', topic: '', data: 'x' },
    { type: 'subscribe', topics: 'private-doc' },
    { type: 'subscribe', topics: { 0: 'private-doc' } },
    { type: 'unsubscribe', topics: 5 },
    '['.repeat(100) + ']'.repeat(100),
    // A lone surrogate: no topic can be made of it (nor a bus channel).
    { type: 'publish', topic: '\udfff', data: 'x' },
  ];
  // Subscribes whose every entry is skipped: too long, a lone surrogate.
  const skipped = [
    { type: 'subscribe', topics: ['x'.repeat(300)] },
    { type: 'subscribe', topics: ['\ud800'] },
  ];
  for (const frame of [...bad, ...skipped]) hostile.send(frame);
  hostile.send({ type: 'no-such-type', topic: 'private-doc' });
  hostile.send({ type: '__proto__' });
  hostile.ws.send(Buffer.from([0xff, 0xfe, 0x00]));
  await hostile.roundTrip();
  expect(hostile.received).toEqual([{ type: 'pong' }]);
  expect((await metric(a, invalid)) - invalidBefore).toBe(bad.length + 1);
  expect((await metric(a, unknown)) - unknownBefore).toBe(2);
  // A subscribe with some bad entries keeps the good ones, as y-webrtc's server does.
  hostile.send({ type: 'subscribe', topics: [1, null, 'mixed-doc'] });
  hostile.send({ type: 'publish', topic: 'mixed-doc', data: 'kept' });
  await hostile.next(publishOf('mixed-doc', 'kept'));
  await bystander.roundTrip();
  expect(bystander.received.filter((m) => m.topic !== 'private-doc')).toEqual([{ type: 'pong' }]);
});

it('survives generated hostile frames, and none of them reaches a subscriber of another topic', async () => {
  const bystander = await YClient.connect(a);
  await subscribed(bystander, ['fuzz-private']);
  const hostile = await YClient.connect(a);
  const text = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.constantFrom('__proto__', 'constructor', '\ud800', '\u0000'),
  );
  const topics = fc.oneof(
    fc.array(fc.oneof(text, fc.jsonValue({ maxDepth: 2 })), { maxLength: 5 }),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const message = fc
    .record(
      {
        type: fc.constantFrom('subscribe', 'unsubscribe', 'publish', 'ping', 'pong', '__proto__', ''),
        topic: fc.oneof(text, fc.jsonValue({ maxDepth: 2 })),
        topics,
        data: fc.jsonValue({ maxDepth: 3 }),
      },
      { requiredKeys: ['type'] },
    )
    .map((m) => JSON.stringify(m));
  const frame = fc.oneof(
    { weight: 8, arbitrary: message },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  );
  // Fewer than the rate limit's burst: the flood test is a separate one.
  for (const f of fc.sample(frame, { numRuns: 500, seed: 20261207 })) hostile.send(f);
  await hostile.roundTrip();
  const published = hostile.received.filter((m) => m.type === 'publish');
  expect(published.every((m) => typeof m.topic === 'string' && m.topic !== 'fuzz-private')).toBe(true);
  await bystander.roundTrip();
  expect(bystander.received.filter((m) => m.type === 'publish' && m.topic !== 'fuzz-private')).toEqual([]);
}, 30_000);

it('closes a connection that sends a frame over MAX_MESSAGE_BYTES, and counts it', async () => {
  const series = 'signaling_compat_messages_received_total{protocol="y-webrtc",type="too-large"}';
  const before = (await metric(b, series)) || 0;
  const client = await YClient.connect(b);
  client.send({ type: 'publish', topic: 'doc-5', data: 'x'.repeat(5000) });
  expect(await client.closed).toBe(1009);
  expect((await metric(b, series)) - before).toBe(1);
});

it('closes a connection that floods past its rate limit with 1008, and the node goes on', async () => {
  const series = 'signaling_compat_dropped_total{protocol="y-webrtc",reason="rate-limit"}';
  const flooder = await YClient.connect(b);
  for (let i = 0; i < 1000; i++) flooder.send({ type: 'ping' });
  expect(await flooder.closed).toBe(1008);
  expect(await metric(b, series)).toBeGreaterThanOrEqual(20);
  const after = await YClient.connect(b);
  await after.roundTrip();
});

it('refuses connections past MAX_CONNECTIONS_PER_IP with 429, and counts them', async () => {
  const series = 'signaling_compat_dropped_total{protocol="y-webrtc",reason="upgrade-ip-limit"}';
  for (let i = 0; i < 6; i++) await YClient.connect(a);
  const refused = new WebSocket(`ws://127.0.0.1:${a.port}${PATH}`);
  const status = await new Promise<number>((resolve) =>
    refused.once('unexpected-response', (_req, res) => resolve(res.statusCode!)),
  );
  expect(status).toBe(429);
  expect(await metric(a, series)).toBe(1);
});

it("counts y-webrtc connections in the node's load that the operator API shows", async () => {
  await YClient.connect(b);
  await YClient.connect(b);
  const nodes = await eventually(
    "node B's connections in /v1/cluster",
    5000,
    async () => (await callApi(a, 'GET', '/v1/cluster', { key: READ_KEY })).body.nodes as { id: string; connections: number }[],
    (list) => list.find((n) => n.id === b.id)?.connections === 2,
  );
  expect(nodes.find((n) => n.id === b.id)?.connections).toBe(2);
});

it('serves the native protocol at /ws beside it', async () => {
  const ws = new WebSocket(a.url);
  const first = await new Promise<Record<string, unknown>>((resolve) =>
    ws.once('message', (d) => resolve(JSON.parse(String(d)))),
  );
  expect(first.type).toBe('welcome');
  ws.close();
});

// Last: it stops node B.
it('closes its y-webrtc connections with 1012 when the node drains, so that clients reconnect elsewhere', async () => {
  const client = await YClient.connect(b);
  await subscribed(client, ['doc-6']);
  const stopped = b.stop('SIGTERM');
  expect(await client.closed).toBe(1012);
  expect(await stopped).toBe(0);
  const elsewhere = await YClient.connect(a);
  await subscribed(elsewhere, ['doc-6']);
});
