// Membership at scale and under failure: a large room split over two nodes, resume within the
// grace period, grace expiry, and silent clients.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { killAllNodes, metric, startCluster, untilMetric, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';

const GRACE_MS = 1500;
let a: RunningNode;
let b: RunningNode;
const clients = new ClientTracker();
const client = (node: RunningNode) => clients.connect(node);

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: { RESUME_GRACE_MS: String(GRACE_MS), NODE_HEARTBEAT_MS: '1000', IDLE_TIMEOUT_MS: '8000' },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

describe('a room of 40 split across two nodes', () => {
  it('every member ends up knowing the other 39, each exactly once', async () => {
    const room = newRoom();
    const members = await Promise.all(Array.from({ length: 40 }, (_, i) => client(i % 2 === 0 ? a : b)));
    const joined = await Promise.all(members.map((m, i) => m.join(room, { name: `m${i}` })));
    const ids = joined.map((j) => j.self.id);
    expect(new Set(ids).size).toBe(40);
    await Promise.all(
      members.map(async (m, i) => {
        const known = new Set(joined[i]!.peers.map((p) => p.id));
        while (known.size < 39) {
          const event = await m.waitForType('peer-joined', () => true, 10_000);
          expect(known.has(event.peer.id), 'a peer announced twice').toBe(false);
          known.add(event.peer.id);
        }
        expect([...known].sort()).toEqual(ids.filter((id) => id !== ids[i]).sort());
      }),
    );
    // Nothing extra still in flight: a round trip, then no member saw more than 39 peers.
    await Promise.all(members.map((m) => m.request({ type: 'ping' })));
    for (const [i, m] of members.entries()) {
      expect(joined[i]!.peers.length + m.seen((x) => x.type === 'peer-joined').length).toBe(39);
    }
  });
});

describe('resume', () => {
  it('a dropped participant resumes on the other node with the same id; the others see nothing', async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    const carol = await client(b);
    const aj = await alice.join(room);
    const bj = await bob.join(room);
    await carol.join(room);
    await alice.waitForType('peer-joined', (m) => m.peer.id === bj.self.id);

    bob.drop();
    const bobAgain = await client(a);
    const resumed = await bobAgain.join(room, { resume: bj.resume });
    expect(resumed.resumed).toBe(true);
    expect(resumed.self.id).toBe(bj.self.id);
    expect(resumed.peers.map((p) => p.id)).toContain(aj.self.id);
    expect(resumed.resume).not.toBe(bj.resume);

    // Carol drops for good: her peer-left comes after the grace period, by which time Bob's would
    // have come too had the resume not held.
    carol.drop();
    await alice.waitForType('peer-left', () => true, GRACE_MS + 5000);
    expect(alice.seen((m) => m.type === 'peer-left' && m.peer.id === bj.self.id)).toEqual([]);
    expect(alice.seen((m) => m.type === 'peer-joined' && m.peer.id === bj.self.id)).toHaveLength(1);

    // Signals reach the resumed participant on its new node.
    await alice.request({ type: 'signal', room, to: bj.self.id, data: 'after-resume' });
    expect(await bobAgain.waitForType('signal')).toMatchObject({ from: aj.self.id, data: 'after-resume' });
  });

  it('signals sent while a participant is between connections arrive after its resume, in order, once', async () => {
    const room = newRoom();
    const alice = await client(a);
    const carol = await client(b);
    const bob = await client(b);
    const aj = await alice.join(room);
    const cj = await carol.join(room);
    const bj = await bob.join(room);
    await alice.request({ type: 'signal', room, to: bj.self.id, data: { n: 0 } });
    await bob.waitForType('signal', (m) => (m.data as { n: number }).n === 0);

    const held = await metric(b, 'signaling_participants');
    bob.drop();
    // Once node b has noticed the drop, signals to Bob are kept for him, not written to a dead socket.
    await untilMetric(b, 'signaling_participants', (v) => v === held - 1);
    for (let n = 1; n <= 5; n++) await alice.request({ type: 'signal', room, to: bj.self.id, data: { n } });
    await carol.request({ type: 'signal', room, to: bj.self.id, data: { n: 6 } });

    const again = await client(a);
    expect(await again.join(room, { resume: bj.resume })).toMatchObject({ resumed: true });
    await alice.request({ type: 'signal', room, to: bj.self.id, data: { n: 7 } });
    await again.waitForType('signal', (m) => (m.data as { n: number }).n === 7);
    await again.request({ type: 'ping' });
    const got = again.seen((m) => m.type === 'signal') as { from: string; data: { n: number } }[];
    expect(got.map((m) => m.data.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(got.map((m) => m.from)).toEqual([...Array(5).fill(aj.self.id), cj.self.id, aj.self.id]);
    // The resumed connection saw joined first, then the kept signals.
    expect(again.received.findIndex((m) => m.type === 'joined')).toBeLessThan(
      again.received.findIndex((m) => m.type === 'signal'),
    );
  });

  it('a resume token works once: replaying it gives a new participant', async () => {
    const room = newRoom();
    const bob = await client(a);
    const bj = await bob.join(room);
    bob.drop();
    const second = await client(b);
    expect((await second.join(room, { resume: bj.resume })).self.id).toBe(bj.self.id);
    const third = await client(a);
    const replay = await third.join(room, { resume: bj.resume });
    expect(replay.resumed).toBe(false);
    expect(replay.self.id).not.toBe(bj.self.id);
  });

  it('a resume token is bound to its room', async () => {
    const [room, other] = [newRoom(), newRoom()];
    const bob = await client(a);
    const bj = await bob.join(room);
    bob.drop();
    const again = await client(b);
    const elsewhere = await again.join(other, { resume: bj.resume });
    expect(elsewhere.resumed).toBe(false);
    expect(elsewhere.self.id).not.toBe(bj.self.id);
  });

  it('when the grace period ends without a resume, the others get peer-left with reason disconnected', async () => {
    const room = newRoom();
    const alice = await client(a);
    const bob = await client(b);
    await alice.join(room);
    const bj = await bob.join(room);
    const droppedAt = Date.now();
    bob.drop();
    const left = await alice.waitForType('peer-left', () => true, GRACE_MS + 5000);
    expect(left).toEqual({ type: 'peer-left', room, peer: { id: bj.self.id }, reason: 'disconnected' });
    expect(Date.now() - droppedAt).toBeGreaterThanOrEqual(GRACE_MS);
    expect(await alice.request({ type: 'signal', room, to: bj.self.id, data: 'too late' })).toMatchObject({
      code: 'peer-not-found',
    });
    const late = await client(b);
    expect(await late.join(room, { resume: bj.resume })).toMatchObject({ resumed: false });
  });

  it('a client that goes silent is closed by the server and leaves with reason timeout', async () => {
    const room = newRoom();
    const alice = await client(a);
    await alice.join(room);
    // A client that never answers pings, as a frozen tab would.
    const silent = new WebSocket(b.url, { autoPong: false });
    const frames: string[] = [];
    silent.on('message', (d) => frames.push(d.toString()));
    await new Promise((resolve) => silent.once('open', resolve));
    silent.send(JSON.stringify({ type: 'join', room, id: 1 }));
    const closed = new Promise<number>((resolve) => silent.once('close', (code) => resolve(code)));
    const left = await alice.waitForType('peer-left', () => true, 8000 * 2 + GRACE_MS + 5000);
    expect(left.reason).toBe('timeout');
    await closed;
    const joined = JSON.parse(frames.find((f) => f.includes('"joined"'))!);
    expect(left.peer.id).toBe(joined.self.id);
  }, 40_000);
});
