// Operator actions on the in-memory twins (two nodes and an API node sharing a bus and a store):
// the cases real sockets make slow to reach, such as a participant between two connections.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MemoryGapRecords } from '../../src/bus/gap-records.js';
import { MemoryHub } from '../../src/bus/memory-bus.js';
import { createMetrics } from '../../src/metrics.js';
import { RoomAdmin } from '../../src/rooms/room-admin.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FakeNode, type FakeClient } from '../support/fake-node.js';

function cluster() {
  const hub = new MemoryHub();
  const store = new MemoryStore();
  const gapRecords = new MemoryGapRecords();
  const admin = new RoomAdmin({
    nodeId: 'api',
    store,
    bus: hub.createBus(),
    metrics: createMetrics(),
    log: pino({ level: 'silent' }),
  });
  return { admin, a: new FakeNode('a', hub, store, { gapRecords }), b: new FakeNode('b', hub, store, { gapRecords }) };
}

async function join(client: FakeClient, room: string, extra: Record<string, unknown> = {}) {
  const reply = await client.request({ type: 'join', room, ...extra });
  if (reply.type !== 'joined') throw new Error(JSON.stringify(reply));
  return reply;
}

describe('RoomAdmin', () => {
  it('a server message to a participant between two connections reaches it after its resume, in order with signals', async () => {
    const { admin, a, b } = cluster();
    const alice = a.connect();
    const bob = b.connect();
    await join(alice, 'gap');
    const bj = await join(bob, 'gap');
    bob.close();
    await alice.request({ type: 'signal', room: 'gap', to: bj.self.id, data: 'first' });
    await admin.send('gap', { notice: 'second' }, [bj.self.id]);
    const again = a.connect();
    const resumed = await join(again, 'gap', { resume: bj.resume });
    expect(resumed.self.id).toBe(bj.self.id);
    await again.waitFor((m) => m.type === 'server');
    expect(again.frames.filter((f) => f.type === 'signal' || f.type === 'server').map((f) => f.type)).toEqual([
      'signal',
      'server',
    ]);
    expect(alice.of('server')).toEqual([]);
  });

  it('removing a participant in its grace period tells the others it was kicked, and its resume token stops working', async () => {
    const { admin, a, b } = cluster();
    const alice = a.connect();
    const bob = b.connect();
    await join(alice, 'grace');
    const bj = await join(bob, 'grace');
    bob.close();
    expect(await admin.removeParticipant('grace', bj.self.id, 'gone')).toBe(true);
    const left = (await alice.waitFor((m) => m.type === 'peer-left')) as { reason: string; peer: { id: string } };
    expect(left).toMatchObject({ reason: 'kicked', peer: { id: bj.self.id } });
    const again = b.connect();
    const rejoined = await join(again, 'grace', { resume: bj.resume });
    expect(rejoined.self.id).not.toBe(bj.self.id);
    expect(await admin.removeParticipant('grace', bj.self.id)).toBe(false);
  });

  it('a state write by the server is a compare-and-set every member sees, from "server"', async () => {
    const { admin, a, b } = cluster();
    const [alice, bob] = [a.connect(), b.connect()];
    await join(alice, 'st');
    await join(bob, 'st');
    expect(await admin.writeState('st', 0, { on: true })).toEqual({ ok: true, version: 1 });
    expect(await admin.writeState('st', 0, { on: false })).toEqual({ ok: false, current: { version: 1, data: { on: true } } });
    for (const c of [alice, bob])
      expect(await c.waitFor((m) => m.type === 'state')).toMatchObject({ version: 1, from: 'server' });
  });
});
