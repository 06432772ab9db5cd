// Signals across a resume on in-process nodes (in-memory bus, store and gap records): whatever
// happened to the node a participant left, it gets every signal sent to it meanwhile, in order,
// once, on whichever node it resumes; and stale markers of older memberships change nothing.
import { describe, expect, it } from 'vitest';
import { MemoryGapRecords } from '../../src/bus/gap-records.js';
import { Route } from '../../src/bus/bus.js';
import { MemoryHub } from '../../src/bus/memory-bus.js';
import { Kind, encodeEnvelope } from '../../src/rooms/envelope.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FakeNode, type FakeClient } from '../support/fake-node.js';

function cluster(handoverWaitMs = 500) {
  const hub = new MemoryHub();
  const store = new MemoryStore();
  const gapRecords = new MemoryGapRecords();
  const node = (id: string) => new FakeNode(id, hub, store, { gapRecords, handoverWaitMs });
  return { hub, store, gapRecords, a: node('a'), b: node('b'), c: node('c') };
}

async function join(client: FakeClient, room: string, extra: Record<string, unknown> = {}) {
  const reply = await client.request({ type: 'join', room, ...extra });
  if (reply.type !== 'joined') throw new Error(JSON.stringify(reply));
  return reply;
}

const signalsOf = (client: FakeClient) => client.of('signal').map((s) => s.data);

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(check()).toBe(true);
}

describe('SignalRouter', () => {
  it('delivers a gap after the previous node is gone, in order, once, then goes live', async () => {
    const { a, b, c } = cluster();
    const [alice, bob] = [a.connect(), b.connect()];
    await join(alice, 'r');
    const bj = await join(bob, 'r');
    bob.close();
    await b.service.settled();
    await b.bus.close(); // the node bob left exits before bob comes back
    for (let i = 1; i <= 5; i++)
      expect(await alice.request({ type: 'signal', room: 'r', to: bj.self.id, data: i })).toMatchObject({ type: 'ack' });

    const back = c.connect();
    const rj = await join(back, 'r', { resume: bj.resume });
    expect(rj.self.id).toBe(bj.self.id);
    await alice.request({ type: 'signal', room: 'r', to: bj.self.id, data: 6 });
    await until(() => signalsOf(back).length >= 6);
    expect(signalsOf(back)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(alice.of('peer-left')).toEqual([]);
  });

  it('lets a resume whose joined was lost be retried with the same token, gap included', async () => {
    const { a, b, c } = cluster();
    const [alice, bob] = [a.connect(), b.connect()];
    await join(alice, 'r');
    const bj = await join(bob, 'r');
    bob.close();
    await alice.request({ type: 'signal', room: 'r', to: bj.self.id, data: 'before' });

    // The connection drops after the database took the resume over, before `joined` arrives.
    const lost = c.connect();
    lost.send({ type: 'join', room: 'r', resume: bj.resume, id: 'lost' });
    lost.close();
    await c.service.settled();
    await alice.request({ type: 'signal', room: 'r', to: bj.self.id, data: 'between' });

    const retry = a.connect();
    const rj = await join(retry, 'r', { resume: bj.resume });
    expect(rj).toMatchObject({ self: { id: bj.self.id }, resumed: true });
    await until(() => signalsOf(retry).length >= 2);
    expect(signalsOf(retry)).toEqual(['before', 'between']);
    expect(lost.of('signal')).toEqual([]);
  });

  it('moves a participant off a half-dead connection at the Claim, each signal delivered once', async () => {
    const { a, b, c } = cluster();
    const [alice, bob] = [a.connect(), b.connect()];
    await join(alice, 'r');
    const bj = await join(bob, 'r');
    await alice.request({ type: 'signal', room: 'r', to: bj.self.id, data: 'old-1' });
    await until(() => signalsOf(bob).length === 1);

    // bob's old connection never closed; it resumes from elsewhere.
    const moved = c.connect();
    await join(moved, 'r', { resume: bj.resume });
    for (const data of ['new-1', 'new-2']) await alice.request({ type: 'signal', room: 'r', to: bj.self.id, data });
    await until(() => signalsOf(moved).length >= 2);
    expect(signalsOf(moved)).toEqual(['new-1', 'new-2']);
    expect(signalsOf(bob)).toEqual(['old-1']);
  });

  it('ignores a late Claim of an older membership', async () => {
    const { hub, a, b, c } = cluster();
    const [alice, bob] = [a.connect(), b.connect()];
    await join(alice, 'r');
    const bj = await join(bob, 'r');
    bob.close();
    const first = c.connect();
    const r1 = await join(first, 'r', { resume: bj.resume });
    first.close();
    const second = a.connect();
    await join(second, 'r', { resume: r1.resume });

    // The first resume's Claim (epoch 1) published late by its node, after the second one (epoch 2):
    // neither the rooms nor the bus's routing may take it for the newer one.
    const claim = encodeEnvelope('c', { kind: Kind.Claim, participant: bj.self.id, epoch: 1 });
    await hub.createBus('c').publish('r', claim, Route.Home, bj.self.id, 1);
    await alice.request({ type: 'signal', room: 'r', to: bj.self.id, data: 'still-here' });
    await until(() => signalsOf(second).includes('still-here'));
    expect(await second.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await second.request({ type: 'broadcast', room: 'r', data: 'x' })).toMatchObject({ type: 'ack' });
  });

  it('holds signals for a newcomer between its peer-joined and its joined', async () => {
    const { a, b } = cluster();
    const alice = a.connect();
    await join(alice, 'r');
    const bob = b.connect();
    bob.send({ type: 'join', room: 'r', id: 'j' });
    const seen = await alice.waitFor((m) => m.type === 'peer-joined');
    if (seen.type !== 'peer-joined') throw new Error('unreachable');
    expect(await alice.request({ type: 'signal', room: 'r', to: seen.peer.id, data: 'early' })).toMatchObject({ type: 'ack' });
    await until(() => signalsOf(bob).length === 1);
    const types = bob.frames.map((f) => f.type);
    expect(types.indexOf('joined')).toBeLessThan(types.indexOf('signal'));
  });
});
