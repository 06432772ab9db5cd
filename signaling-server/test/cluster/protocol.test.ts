// Every rule of protocol v1 (shared/protocol.md), with clients spread over two nodes on one
// Postgres and one Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';

let a: RunningNode;
let b: RunningNode;
const clients = new ClientTracker();
const client = (node: RunningNode) => clients.connect(node);

beforeAll(async () => {
  [a, b] = (await startCluster(2)).nodes as [RunningNode, RunningNode];
});

afterAll(async () => {
  expect(clients.dropAll(), 'frames that break the server message schemas').toEqual([]);
  await killAllNodes();
});

describe('connecting', () => {
  it('greets a new connection with welcome naming the node and the heartbeat', async () => {
    const c = await client(a);
    expect(c.welcome).toMatchObject({ type: 'welcome', protocol: 1, node: a.id });
    expect(c.welcome.heartbeatMs).toBeGreaterThan(0);
  });

  it('answers ping with pong echoing the id, and a ping without id with a pong without id', async () => {
    const c = await client(a);
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong', id: expect.any(Number) });
    c.send({ type: 'ping', id: 'text-id' });
    expect(await c.waitForType('pong', (m) => m.id === 'text-id')).toEqual({ type: 'pong', id: 'text-id' });
    c.send({ type: 'ping' });
    expect(await c.waitForType('pong', (m) => m.id === undefined)).toEqual({ type: 'pong' });
  });
});

describe('joining', () => {
  it('a peer on the other node sees the newcomer, and the newcomer sees the peers already there', async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    const aliceJoined = await alice.join(room, { name: 'Alice', meta: { role: 'host' } });
    expect(aliceJoined.peers).toEqual([]);
    expect(aliceJoined.self).toEqual({ id: expect.any(String), name: 'Alice', meta: { role: 'host' } });
    expect(aliceJoined.state).toEqual({ version: 0, data: null });
    expect(aliceJoined.resume).toEqual(expect.any(String));

    const bobJoined = await bob.join(room, { name: 'Bob' });
    expect(bobJoined.peers).toEqual([aliceJoined.self]);
    const seenByAlice = await alice.waitForType('peer-joined', (m) => m.room === room);
    expect(seenByAlice.peer).toEqual({ id: bobJoined.self.id, name: 'Bob', meta: {} });
  });

  it('refuses a second join of the same room on one connection with already-joined', async () => {
    const room = newRoom();
    const c = await client(a);
    await c.join(room);
    expect(await c.request({ type: 'join', room })).toMatchObject({ type: 'error', code: 'already-joined' });
  });

  it('lets one connection join several rooms', async () => {
    const c = await client(b);
    const [r1, r2] = [newRoom(), newRoom()];
    const j1 = await c.join(r1);
    const j2 = await c.join(r2);
    expect(j1.self.id).not.toEqual(j2.self.id);
  });

  it('rejects bad room names and oversized fields with bad-request', async () => {
    const c = await client(a);
    for (const join of [
      { room: '' },
      { room: 'has space' },
      { room: 'x'.repeat(129) },
      { room: newRoom(), name: 'n'.repeat(65) },
      { room: newRoom(), meta: 'not an object' },
      { room: newRoom(), meta: { big: 'x'.repeat(5000) } },
    ]) {
      expect(await c.request({ type: 'join', ...join }), JSON.stringify(join).slice(0, 80)).toMatchObject({
        type: 'error',
        code: 'bad-request',
      });
    }
  });
});

describe('signal', () => {
  it('reaches only the addressed peer on the other node, from the sender, and acks when asked', async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    const carol = await client(b);
    const aj = await alice.join(room);
    const bj = await bob.join(room);
    await carol.join(room);
    const ack = await alice.request({ type: 'signal', room, to: bj.self.id, data: { sdp: 'offer' } });
    expect(ack).toEqual({ type: 'ack', id: expect.any(Number) });
    const got = await bob.waitForType('signal');
    expect(got).toEqual({ type: 'signal', room, from: aj.self.id, data: { sdp: 'offer' } });
    // Carol is in the room but was not addressed; a ping round trip proves nothing is in flight.
    await carol.request({ type: 'ping' });
    await bob.request({ type: 'signal', room, to: aj.self.id, data: 'answer' });
    await alice.waitForType('signal', (m) => m.data === 'answer');
    await carol.request({ type: 'ping' });
    expect(carol.seen((m) => m.type === 'signal')).toEqual([]);
  });

  it('answers peer-not-found for an id that is not in the room, and not-joined for a room not joined', async () => {
    const room = newRoom();
    const c = await client(a);
    await c.join(room);
    expect(await c.request({ type: 'signal', room, to: 'nobody', data: 1 })).toMatchObject({
      type: 'error',
      code: 'peer-not-found',
    });
    expect(await c.request({ type: 'signal', room: newRoom(), to: 'x', data: 1 })).toMatchObject({
      type: 'error',
      code: 'not-joined',
    });
  });

  it('delivers 200 signals in a row across nodes complete and in order', async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    await alice.join(room);
    const bj = await bob.join(room);
    for (let i = 0; i < 200; i++) alice.send({ type: 'signal', room, to: bj.self.id, data: { i } });
    await bob.waitForType('signal', (m) => (m.data as { i: number }).i === 199, 10_000);
    const order = bob.seen((m) => m.type === 'signal').map((m) => (m as { data: { i: number } }).data.i);
    expect(order).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });
});

describe('broadcast', () => {
  it('reaches every other participant on both nodes once, and not the sender', async () => {
    const room = newRoom();
    const members = [await client(a), await client(a), await client(b), await client(b)];
    const joined = [];
    for (const m of members) joined.push(await m.join(room));
    const ack = await members[0]!.request({ type: 'broadcast', room, data: { hello: 'all' } });
    expect(ack.type).toBe('ack');
    for (const m of members.slice(1)) {
      expect(await m.waitForType('broadcast')).toEqual({
        type: 'broadcast',
        room,
        from: joined[0]!.self.id,
        data: { hello: 'all' },
      });
    }
    for (const m of members) await m.request({ type: 'ping' });
    expect(members[0]!.seen((m) => m.type === 'broadcast')).toEqual([]);
    for (const m of members.slice(1)) expect(m.seen((x) => x.type === 'broadcast')).toHaveLength(1);
  });

  it("keeps one sender's broadcasts in order on the other node", async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    await alice.join(room);
    await bob.join(room);
    for (let i = 0; i < 100; i++) alice.send({ type: 'broadcast', room, data: i });
    await bob.waitForType('broadcast', (m) => m.data === 99);
    expect(bob.seen((m) => m.type === 'broadcast').map((m) => (m as { data: number }).data)).toEqual([...Array(100).keys()]);
  });
});

describe('state', () => {
  it('is a compare-and-set: the winner is acked with the new version, others get the state event', async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    const aj = await alice.join(room);
    await bob.join(room);
    expect(await alice.request({ type: 'state', room, data: { topic: 'one' }, version: 0 })).toEqual({
      type: 'ack',
      id: expect.any(Number),
      version: 1,
    });
    expect(await bob.waitForType('state')).toEqual({ type: 'state', room, version: 1, data: { topic: 'one' }, from: aj.self.id });
    const conflict = await bob.request({ type: 'state', room, data: { topic: 'stale' }, version: 0 });
    expect(conflict).toMatchObject({ type: 'error', code: 'version-conflict', state: { version: 1, data: { topic: 'one' } } });
    await alice.request({ type: 'ping' });
    expect(alice.seen((m) => m.type === 'state')).toEqual([]);
  });

  it('shows a newcomer the current state in joined', async () => {
    const room = newRoom();
    const alice = await client(a);
    await alice.join(room);
    await alice.request({ type: 'state', room, data: { n: 1 }, version: 0 });
    await alice.request({ type: 'state', room, data: { n: 2 }, version: 1 });
    const late = await client(b);
    expect((await late.join(room)).state).toEqual({ version: 2, data: { n: 2 } });
  });

  it('rejects a state that is not an object with bad-request', async () => {
    const room = newRoom();
    const c = await client(a);
    await c.join(room);
    expect(await c.request({ type: 'state', room, data: [1, 2], version: 0 })).toMatchObject({ code: 'bad-request' });
    expect(await c.request({ type: 'state', room, data: {}, version: -1 })).toMatchObject({ code: 'bad-request' });
  });
});

describe('leave', () => {
  it('answers left and tells the others peer-left with reason left; the room no longer knows the peer', async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    const aj = await alice.join(room);
    const bj = await bob.join(room);
    expect(await bob.request({ type: 'leave', room })).toEqual({ type: 'left', id: expect.any(Number), room });
    expect(await alice.waitForType('peer-left')).toEqual({ type: 'peer-left', room, peer: { id: bj.self.id }, reason: 'left' });
    expect(await alice.request({ type: 'signal', room, to: bj.self.id, data: 1 })).toMatchObject({ code: 'peer-not-found' });
    expect(await bob.request({ type: 'broadcast', room, data: 1 })).toMatchObject({ code: 'not-joined' });
    expect(await bob.request({ type: 'leave', room })).toMatchObject({ code: 'not-joined' });
    const again = await bob.join(room);
    expect(again.peers.map((p) => p.id)).toEqual([aj.self.id]);
  });
});

describe('bad input', () => {
  it('answers each malformed frame with bad-request, echoing a valid id, and keeps the connection', async () => {
    const c = await client(b);
    c.sendRaw('not json');
    expect(await c.waitForType('error')).toMatchObject({ code: 'bad-request' });
    c.sendRaw('[1,2]');
    expect(await c.waitForType('error')).toEqual({ type: 'error', code: 'bad-request', message: expect.any(String) });
    c.sendRaw(Buffer.from([1, 2, 3]), true);
    expect(await c.waitForType('error')).toMatchObject({ code: 'bad-request' });
    expect(await c.request({ type: 'no-such-type' })).toMatchObject({ type: 'error', code: 'bad-request' });
    expect(await c.request({ type: 'signal', room: 'r' })).toMatchObject({ type: 'error', code: 'bad-request' });
    c.send({ type: 'ping', id: 'x'.repeat(65) });
    expect(await c.waitForType('error', (m) => m.id === undefined)).toMatchObject({ code: 'bad-request' });
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});
