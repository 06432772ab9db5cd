// The rooms layer on two in-process nodes (in-memory bus and store): ordering, races and failures
// that are hard to provoke through real sockets.
import { describe, expect, it } from 'vitest';
import { MemoryHub } from '../../src/bus/memory-bus.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FakeNode, type FakeClient } from '../support/fake-node.js';

function cluster(opts: { maxParticipantsPerRoom?: number; resumeGraceMs?: number } = {}) {
  const hub = new MemoryHub();
  const store = new MemoryStore();
  return { hub, store, a: new FakeNode('a', hub, store, opts), b: new FakeNode('b', hub, store, opts) };
}

async function joinedId(client: FakeClient, room: string, extra: Record<string, unknown> = {}) {
  const reply = await client.request({ type: 'join', room, ...extra });
  if (reply.type !== 'joined') throw new Error(JSON.stringify(reply));
  return reply;
}

describe('RoomService', () => {
  it('announces each of many simultaneous joins over two nodes exactly once to everyone', async () => {
    const { a, b } = cluster();
    const clients = Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).connect());
    const joined = await Promise.all(clients.map((c) => joinedId(c, 'race')));
    const ids = joined.map((j) => j.self.id);
    for (const [i, c] of clients.entries()) {
      const known = [...joined[i]!.peers.map((p) => p.id), ...c.of('peer-joined').map((e) => e.peer.id)];
      // Events still on the in-memory bus are delivered within a few turns of the loop.
      for (let turn = 0; known.length < 29 && turn < 100; turn++) {
        await new Promise((r) => setImmediate(r));
        known.splice(0, known.length, ...joined[i]!.peers.map((p) => p.id), ...c.of('peer-joined').map((e) => e.peer.id));
      }
      expect(known.sort()).toEqual(ids.filter((id) => id !== ids[i]).sort());
    }
  });

  it("keeps one sender's order when a state change is followed by a broadcast", async () => {
    const { a, b } = cluster();
    const [alice, bob] = [a.connect(), b.connect()];
    await joinedId(alice, 'order');
    await joinedId(bob, 'order');
    alice.send({ type: 'state', room: 'order', data: { step: 1 }, version: 0 });
    alice.send({ type: 'broadcast', room: 'order', data: 'after-state' });
    await bob.waitFor((m) => m.type === 'broadcast');
    expect(bob.frames.filter((f) => f.type === 'state' || f.type === 'broadcast').map((f) => f.type)).toEqual([
      'state',
      'broadcast',
    ]);
  });

  it('answers requests queued behind a leave with not-joined, in order', async () => {
    const { a } = cluster();
    const alice = a.connect();
    await joinedId(alice, 'q');
    const replies = Promise.all([
      alice.request({ type: 'leave', room: 'q' }),
      alice.request({ type: 'broadcast', room: 'q', data: 1 }),
    ]);
    const [left, late] = await replies;
    expect(left.type).toBe('left');
    expect(late).toMatchObject({ type: 'error', code: 'not-joined' });
  });

  it('runs messages sent right after join once the join completes', async () => {
    const { a, b } = cluster();
    const bob = b.connect();
    const bj = await joinedId(bob, 'eager');
    const alice = a.connect();
    alice.send({ type: 'join', room: 'eager', id: 'j' });
    const ack = alice.request({ type: 'signal', room: 'eager', to: bj.self.id, data: 'early' });
    expect(await ack).toMatchObject({ type: 'ack' });
    expect(await bob.waitFor((m) => m.type === 'signal')).toMatchObject({ data: 'early' });
  });

  it('answers unavailable when the database is down, while joined peers keep signalling', async () => {
    const { a, b, store } = cluster();
    const [alice, bob] = [a.connect(), b.connect()];
    const aj = await joinedId(alice, 'outage');
    const bj = await joinedId(bob, 'outage');
    store.isDown = true;
    expect(await a.connect().request({ type: 'join', room: 'outage' })).toMatchObject({ type: 'error', code: 'unavailable' });
    expect(await alice.request({ type: 'state', room: 'outage', data: {}, version: 0 })).toMatchObject({ code: 'unavailable' });
    expect(await alice.request({ type: 'signal', room: 'outage', to: bj.self.id, data: 'still here' })).toMatchObject({
      type: 'ack',
    });
    expect(await bob.waitFor((m) => m.type === 'signal')).toMatchObject({ from: aj.self.id, data: 'still here' });
    // Both refusals on node a are counted, by their code.
    const { values } = await a.metrics.errors.get();
    expect(values.find((v) => v.labels.code === 'unavailable')?.value).toBe(2);
  });

  it('records the grace period once the database is back, when it was down at disconnect', async () => {
    const { a, store } = cluster({ resumeGraceMs: 0 });
    const alice = a.connect();
    const aj = await joinedId(alice, 'retry');
    store.isDown = true;
    alice.close();
    store.isDown = false;
    // The retry runs on a timer; reaping finds the participant once its disconnect has landed.
    let reaped: unknown[] = [];
    while (reaped.length === 0) {
      await new Promise((r) => setTimeout(r, 10));
      reaped = await store.reap(60_000, async () => {});
    }
    expect(reaped).toEqual([{ room: 'retry', participantId: aj.self.id, reason: 'disconnected', seq: expect.any(Number) }]);
  });

  it('lets the old node drop a participant that resumed on another node, without peer-left', async () => {
    const { a, b } = cluster();
    const [alice, watcher] = [a.connect(), b.connect()];
    const aj = await joinedId(alice, 'move');
    await joinedId(watcher, 'move');
    // Alice's old connection is still open (a half-dead network) when she resumes on node b.
    const again = b.connect();
    const resumed = await joinedId(again, 'move', { resume: aj.resume });
    expect(resumed).toMatchObject({ resumed: true, self: { id: aj.self.id } });
    await watcher.request({ type: 'ping' });
    await new Promise((r) => setImmediate(r));
    // The old connection no longer holds the membership; the new one does.
    expect(await alice.request({ type: 'broadcast', room: 'move', data: 1 })).toMatchObject({ code: 'not-joined' });
    expect(await again.request({ type: 'broadcast', room: 'move', data: 2 })).toMatchObject({ type: 'ack' });
    expect(watcher.of('peer-left')).toEqual([]);
    expect(watcher.of('broadcast').map((m) => m.data)).toEqual([2]);
  });

  it('starts the grace period of a join whose connection closed while it was in flight', async () => {
    const { a, store } = cluster({ resumeGraceMs: 0 });
    const alice = a.connect();
    alice.send({ type: 'join', room: 'vanish', id: 1 });
    alice.close();
    let reaped: { participantId: string }[] = [];
    while (reaped.length === 0) {
      await new Promise((r) => setTimeout(r, 5));
      reaped = await store.reap(60_000, async () => {});
    }
    expect(reaped).toHaveLength(1);
    expect(alice.frames).toEqual([]);
  });

  it('refuses a join past the room limit with room-full', async () => {
    const { a, b } = cluster({ maxParticipantsPerRoom: 2 });
    await joinedId(a.connect(), 'small');
    await joinedId(b.connect(), 'small');
    expect(await a.connect().request({ type: 'join', room: 'small' })).toMatchObject({ code: 'room-full' });
  });

  it('brings a joiner every room change after its snapshot when its bus subscription is slow', async () => {
    const hub = new MemoryHub();
    const store = new MemoryStore();
    const b = new FakeNode('b', hub, store);
    // Node a's subscriptions complete only when the test lets them, as a slow Redis SUBSCRIBE would.
    let releaseSubscriptions!: () => void;
    const isReleased = new Promise<void>((resolve) => (releaseSubscriptions = resolve));
    const createBus = hub.createBus.bind(hub);
    hub.createBus = (nodeId?: string) => {
      const bus = createBus(nodeId);
      const subscribe = bus.subscribe.bind(bus);
      bus.subscribe = async (room) => {
        await isReleased;
        await subscribe(room);
      };
      return bus;
    };
    const a = new FakeNode('a', hub, store);
    const [alice, bob] = [a.connect(), b.connect()];
    await joinedId(bob, 'slow');
    // Bob changes the room while Alice's join waits on her node's subscription. Whether the change
    // lands in her snapshot or after it, she must see it, and Bob must see her arrive.
    const aliceJoined = joinedId(alice, 'slow');
    await new Promise((r) => setImmediate(r));
    const bobWrote = bob.request({ type: 'state', room: 'slow', data: { step: 1 }, version: 0 });
    await new Promise((r) => setImmediate(r));
    releaseSubscriptions();
    const joined = await aliceJoined;
    expect(await bobWrote).toMatchObject({ type: 'ack', version: 1 });
    const seen = joined.state.version === 1 ? joined.state : await alice.waitFor((m) => m.type === 'state');
    expect(seen).toMatchObject({ version: 1, data: { step: 1 } });
    await bob.waitFor((m) => m.type === 'peer-joined' && m.peer.id === joined.self.id);
  });
});
