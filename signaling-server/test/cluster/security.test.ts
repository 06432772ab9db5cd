// Hostile and careless clients on a node with tokens and tight limits: each limit answers with the
// protocol's error or close code, and nothing reaches a client it was not meant for.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { killAllNodes, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker } from '../support/clients.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
let a: RunningNode;
let b: RunningNode;
const clients = new ClientTracker();

async function token(claims: Record<string, unknown>, opts: { secret?: string; expiresIn?: string } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(opts.expiresIn ?? '10m')
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

const client = (node: RunningNode, query = '', headers?: Record<string, string>) => clients.connect(node, query, headers);

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: {
      AUTH_JWT_SECRET: SECRET,
      ALLOWED_ORIGINS: 'https://app.example',
      MAX_CONNECTIONS_PER_IP: '40',
      MAX_ROOMS_PER_CONNECTION: '2',
      MAX_PARTICIPANTS_PER_ROOM: '3',
      MAX_JSON_DEPTH: '16',
      RATE_LIMIT_PER_SEC: '200',
      RATE_LIMIT_BURST: '200',
      RATE_LIMIT_STRIKES: '30',
      SEND_BUFFER_BYTES: '65536',
      // The slow-reader test needs a fast sender; the byte budgets have tests of their own.
      CONNECTION_BYTES_PER_SEC: String(1 << 30),
      CONNECTION_BYTES_BURST: String(1 << 30),
      ADDRESS_BYTES_PER_SEC: String(1 << 30),
      ADDRESS_BYTES_BURST: String(1 << 30),
      ADDRESS_BUS_BYTES_PER_SEC: String(1 << 30),
      ADDRESS_BUS_BYTES_BURST: String(1 << 30),
    },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

describe('tokens', () => {
  it('refuses a join without a token, with a bad signature, expired, or for another room', async () => {
    const c = await client(a);
    expect(await c.request({ type: 'join', room: 'vip' })).toMatchObject({ code: 'unauthorized' });
    const forged = await token({ sub: 'eve', room: 'vip' }, { secret: 'not-the-secret-but-long-enough-too' });
    expect(await c.request({ type: 'join', room: 'vip', token: forged })).toMatchObject({ code: 'unauthorized' });
    const expired = await token({ sub: 'eve', room: 'vip' }, { expiresIn: '-1m' });
    expect(await c.request({ type: 'join', room: 'vip', token: expired })).toMatchObject({ code: 'unauthorized' });
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(
      JSON.stringify({ sub: 'eve', room: 'vip', exp: Math.floor(Date.now() / 1000) + 60 }),
    ).toString('base64url')}.`;
    expect(await c.request({ type: 'join', room: 'vip', token: unsigned })).toMatchObject({ code: 'unauthorized' });
    const otherRoom = await token({ sub: 'eve', room: 'lobby' });
    expect(await c.request({ type: 'join', room: 'vip', token: otherRoom })).toMatchObject({ code: 'forbidden' });
  });

  it('takes name from the token over the client, and enforces grants', async () => {
    const room = 'granted';
    const alice = await client(a);
    const viewer = await client(b);
    const aj = await alice.join(room, { token: await token({ sub: 'alice', room, name: 'Alice (verified)' }), name: 'Mallory' });
    expect(aj.self.name).toBe('Alice (verified)');
    await viewer.join(room, { token: await token({ sub: 'viewer', room: '*', grants: ['signal'] }) });
    expect(await viewer.request({ type: 'broadcast', room, data: 1 })).toMatchObject({ code: 'forbidden' });
    expect(await viewer.request({ type: 'state', room, data: {}, version: 0 })).toMatchObject({ code: 'forbidden' });
    expect(await viewer.request({ type: 'signal', room, to: aj.self.id, data: 'ok' })).toMatchObject({ type: 'ack' });
    await alice.waitForType('signal', (m) => m.data === 'ok');
    expect(alice.seen((m) => m.type === 'broadcast' || m.type === 'state')).toEqual([]);
  });

  it('lets a token given at connect time cover every join, and closes with 1008 on a bad one', async () => {
    const c = await client(a, `?token=${await token({ sub: 'bob', room: '*' })}`);
    await c.join('one');
    await c.join('two');
    const bad = await client(b, '?token=garbage');
    expect(await bad.waitForType('error')).toMatchObject({ code: 'unauthorized' });
    expect((await bad.closed).code).toBe(1008);
  });
});

describe('connections', () => {
  it('refuses browser origins not on the list, and accepts listed ones and non-browser clients', async () => {
    // Inside the WebSocket, where a browser's page can read it (docs/protocol.md, "Connecting").
    const evil = new WebSocket(a.url, { headers: { Origin: 'https://evil.example' } });
    const frames: string[] = [];
    evil.on('message', (data) => frames.push(data.toString()));
    expect(await new Promise((resolve) => evil.once('close', resolve))).toBe(1008);
    expect(frames.map((f) => JSON.parse(f))).toEqual([
      { type: 'error', code: 'forbidden-origin', message: 'origin not allowed' },
    ]);
    await client(a, '', { Origin: 'https://app.example' });
  });

  it('caps connections per address, and frees the place when one closes', async () => {
    const node = b;
    const held: WebSocket[] = [];
    let refused = false;
    for (let i = 0; i < 45 && !refused; i++) {
      const ws = new WebSocket(node.url);
      refused = await new Promise<boolean>((resolve) => {
        ws.once('open', () => resolve(false));
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode === 429));
        ws.once('error', () => resolve(false));
      });
      if (!refused) held.push(ws);
    }
    expect(refused).toBe(true);
    expect(held.length).toBeLessThanOrEqual(40);
    const closed = new Promise((resolve) => held[0]!.once('close', resolve));
    held[0]!.close();
    await closed;
    const again = await client(node);
    expect(again.welcome.type).toBe('welcome');
    again.drop();
    for (const ws of held) ws.terminate();
  });
});

describe('limits', () => {
  it('answers too-large for a frame over the limit and closes with 1009 far beyond it', async () => {
    const c = await client(a);
    c.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(70_000) }));
    expect(await c.waitForType('error')).toMatchObject({ code: 'too-large' });
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    c.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(300_000) }));
    expect((await c.closed).code).toBe(1009);
  });

  it('answers bad-request for JSON nested past the limit', async () => {
    const c = await client(a);
    c.sendRaw(`{"type":"ping","x":${'['.repeat(40)}${']'.repeat(40)}}`);
    expect(await c.waitForType('error')).toMatchObject({ code: 'bad-request' });
  });

  it('caps rooms per connection and participants per room, cluster-wide under a race', async () => {
    const c = await client(a);
    const t = await token({ sub: 'c', room: '*' });
    await c.join('r-1', { token: t });
    await c.join('r-2', { token: t });
    expect(await c.request({ type: 'join', room: 'r-3', token: t })).toMatchObject({ code: 'too-many-rooms' });

    const racers = await Promise.all(Array.from({ length: 8 }, (_, i) => client(i % 2 ? a : b)));
    const replies = await Promise.all(racers.map((r) => r.request({ type: 'join', room: 'crowded', token: t })));
    expect(replies.filter((r) => r.type === 'joined')).toHaveLength(3);
    expect(replies.filter((r) => r.type === 'error' && r.code === 'room-full')).toHaveLength(5);
  });

  it('drops messages past the rate with rate-limited, then closes a client that keeps on with 1008', async () => {
    const c = await client(b);
    for (let i = 0; i < 260; i++) c.send({ type: 'ping' });
    await c.waitForType('error', (m) => m.code === 'rate-limited');
    for (let i = 0; i < 400; i++) c.send({ type: 'ping' });
    expect((await c.closed).code).toBe(1008);
  });

  it('closes a reader that stops reading instead of buffering for it without end', async () => {
    const t = await token({ sub: 'x', room: '*' });
    const sender = await client(a);
    const slow = await client(a);
    const bystander = await client(b);
    await sender.join('firehose', { token: t });
    await slow.join('firehose', { token: t });
    const bj = await bystander.join('firehose', { token: t });
    // The slow client's socket stops reading: the node's send buffer for it fills up.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const payload = 'y'.repeat(60_000);
    const connections = async () => {
      const text = await (await fetch(`${a.httpUrl}/metrics`)).text();
      return Number(/^signaling_connections (\d+)/m.exec(text)![1]);
    };
    const before = await connections();
    let after = before;
    for (let round = 0; round < 200 && after >= before; round++) {
      for (let i = 0; i < 10; i++) sender.send({ type: 'broadcast', room: 'firehose', data: payload });
      await sender.request({ type: 'ping' });
      after = await connections();
    }
    expect(after).toBe(before - 1);
    // The rest of the room is unaffected.
    await sender.request({ type: 'signal', room: 'firehose', to: bj.self.id, data: 'still fine' });
    await bystander.waitForType('signal', (m) => m.data === 'still fine');
  });
});
