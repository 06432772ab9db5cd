// Thousands of generated hostile frames thrown at a live node while a bystander pair signals across
// two nodes: the node keeps answering, answers or closes with the protocol's codes only, and the
// pair loses nothing and receives nothing it was not sent.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { killAllNodes, startCluster, type RunningNode } from '../support/cluster.js';
import { TestClient } from '../support/test-client.js';

const FRAMES = 3000;
const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
let a: RunningNode;
let b: RunningNode;

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: { RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000', MAX_MESSAGE_BYTES: '8192' },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
});

afterAll(async () => {
  await killAllNodes();
});

const types = fc.constantFrom('join', 'leave', 'signal', 'broadcast', 'state', 'ping', 'welcome', '__proto__', 'constructor', '');
const nasty = fc.oneof(
  fc.string(),
  fc.string({ minLength: 100, maxLength: 3000 }),
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'fuzz-room', 'a'.repeat(129)),
  fc.double(),
  fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -0, 0.5),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 4 }),
);
const messageLike = fc
  .record(
    {
      type: types,
      id: fc.oneof(fc.integer(), fc.string({ maxLength: 80 }), fc.double(), fc.constant(null)),
      room: fc.oneof(fc.constant('fuzz-room'), nasty),
      to: nasty,
      data: nasty,
      version: nasty,
      meta: fc.oneof(fc.dictionary(fc.string(), nasty), nasty),
      name: nasty,
      token: nasty,
      resume: nasty,
    },
    { requiredKeys: ['type'] },
  )
  .map((m) => JSON.stringify(m));
const frame = fc.oneof(
  { weight: 6, arbitrary: messageLike.map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ text: JSON.stringify(v) })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ text })) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 3000 }).map((n) => ({ text: `{"type":"ping","x":${'['.repeat(n)}${']'.repeat(n)}}` })),
  },
  {
    weight: 1,
    arbitrary: fc
      .string({ maxLength: 20 })
      .map((k) => ({ text: `{"type":"join","room":"fuzz-room","meta":{"__proto__":{"admin":true},"${k}":1}}` })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ binary: Buffer.from(bytes) })) },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 50 })
      .map((bytes) => ({ invalidText: Buffer.concat([Buffer.from([0xff, 0xfe]), bytes]) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 8193, max: 40_000 })
      .map((n) => ({ text: JSON.stringify({ type: 'ping', pad: 'p'.repeat(n) }) })),
  },
);

/** A fuzzing connection that reconnects whenever the node closes it, recording why. */
class Fuzzer {
  ws!: WebSocket;
  /** Close codes, and whether that connection had been sent invalid UTF-8 as text. */
  readonly closes: { code: number; hadInvalidText: boolean }[] = [];
  current = { hadInvalidText: false };
  replies = 0;
  /** Pongs to settle()'s pings, which are not replies to fuzz frames. */
  probeReplies = 0;
  private awaitingProbe: (() => void) | null = null;
  async open(url: string) {
    const connection = (this.current = { hadInvalidText: false });
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      this.replies++;
      if (this.awaitingProbe && String(data).includes('"probe"')) {
        this.probeReplies++;
        this.awaitingProbe();
      }
    });
    this.ws.on('close', (code) => {
      this.closes.push({ code, hadInvalidText: connection.hadInvalidText });
      this.awaitingProbe?.();
    });
    await new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
  }

  /**
   * Waits until the node has answered everything sent so far on this connection, or closed it: a
   * frame that may close the connection is followed by this, so the next frames do not go to a
   * socket the node already gave up (their replies would be lost, and the count would hang on timing).
   */
  async settle() {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const settled = new Promise<void>((resolve) => (this.awaitingProbe = resolve));
    this.ws.send(JSON.stringify({ type: 'ping', id: 'probe' }));
    await settled;
    this.awaitingProbe = null;
  }
}

it('survives generated hostile frames while a bystander pair keeps signalling', async () => {
  const room = `bystanders-${Math.random().toString(36).slice(2)}`;
  const alice = await TestClient.connect(a.url);
  const bob = await TestClient.connect(b.url);
  await alice.join(room);
  const bj = await bob.join(room);

  const frames = fc.sample(frame, { numRuns: FRAMES, seed: SEED });
  const fuzzer = new Fuzzer();
  await fuzzer.open(a.url);
  let signalsSent = 0;
  for (const [i, f] of frames.entries()) {
    if (fuzzer.ws.readyState !== WebSocket.OPEN) await fuzzer.open(i % 2 ? a.url : b.url);
    if ('invalidText' in f) fuzzer.current.hadInvalidText = true;
    if ('text' in f) fuzzer.ws.send(f.text);
    else if ('binary' in f) fuzzer.ws.send(f.binary, { binary: true });
    else fuzzer.ws.send(f.invalidText, { binary: false });
    // Let the close of a frame that ends the connection be seen before the next frame is sent.
    if (!('text' in f) || f.text.length > 8192) {
      await fuzzer.settle();
      await alice.request({ type: 'ping' }, 10_000);
    }
    if (i % 20 === 0) {
      alice.send({ type: 'signal', room, to: bj.self.id, data: { seq: signalsSent++ } });
      // Keep pace with the node rather than queue everything in the client.
      await alice.request({ type: 'ping' }, 10_000);
    }
  }

  // The node still answers, on a fresh connection and on the fuzzer's own if it is open.
  const probe = await TestClient.connect(a.url);
  expect(await probe.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  probe.drop();
  expect(a.process.exitCode).toBeNull();
  expect(b.process.exitCode).toBeNull();

  // The pair lost nothing, in order, and saw nothing else.
  await bob.waitForType('signal', (m) => (m.data as { seq: number }).seq === signalsSent - 1, 10_000);
  const got = bob.seen((m) => m.type === 'signal').map((m) => (m as { data: { seq: number } }).data.seq);
  expect(got).toEqual([...Array(signalsSent).keys()]);
  expect(bob.seen((m) => m.type !== 'signal' && m.type !== 'joined' && m.type !== 'pong')).toEqual([]);
  expect(alice.violations.concat(bob.violations)).toEqual([]);

  // Connections were only ever closed with the codes the protocol names; invalid UTF-8 in a text
  // frame fails the connection at the WebSocket layer, as RFC 6455 (8.1) requires.
  const unexpected = fuzzer.closes.filter(({ code, hadInvalidText }) => !(hadInvalidText || [1008, 1009].includes(code)));
  expect(unexpected).toEqual([]);
  expect(fuzzer.closes.some((c) => c.code === 1009)).toBe(true);
  expect(fuzzer.replies - fuzzer.probeReplies).toBeGreaterThan(FRAMES / 2);
  alice.drop();
  bob.drop();
}, 120_000);
