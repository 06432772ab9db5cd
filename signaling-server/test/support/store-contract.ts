// The rules every RoomStore keeps, run against the in-memory twin (unit) and Postgres
// (integration), so the twin cannot drift from the real thing.
import { describe, expect, it } from 'vitest';
import type { Departure, JoinRequest, RoomStore } from '../../src/store/store.js';

let counter = 0;
const fresh = (what: string) => `${what}-${Date.now().toString(36)}-${counter++}`;
const none = async () => {};
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function request(room: string, overrides: Partial<JoinRequest> = {}): JoinRequest {
  return {
    room,
    participantId: fresh('p'),
    nodeId: 'node-a',
    name: 'n',
    meta: { k: 1 },
    identity: null,
    resumeHash: fresh('hash'),
    maxParticipants: 50,
    ...overrides,
  };
}

export function describeRoomStore(name: string, create: () => Promise<RoomStore>) {
  describe(`${name} keeps the RoomStore rules`, () => {
    it('lists earlier participants as peers and hands out increasing membership seqs', async () => {
      const store = await create();
      const room = fresh('room');
      const first = await store.join(request(room, { name: 'first' }), none);
      const second = await store.join(request(room), none);
      expect(first.peers).toEqual([]);
      expect(first.state).toEqual({ version: 0, data: null });
      expect(second.peers).toEqual([first.self]);
      expect(second.seq).toBeGreaterThan(first.seq);
    });

    it('refuses a join past the limit, also when many race for the last places', async () => {
      const store = await create();
      const room = fresh('room');
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, () => store.join(request(room, { maxParticipants: 5 }), none)),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
      for (const r of results.filter((r) => r.status === 'rejected')) {
        expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'room-full' });
      }
    });

    it('rolls a join back when its announcement cannot be published', async () => {
      const store = await create();
      const room = fresh('room');
      await expect(store.join(request(room), async () => Promise.reject(new Error('bus down')))).rejects.toThrow('bus down');
      expect((await store.join(request(room), none)).peers).toEqual([]);
    });

    it('announces membership changes in seq order, before they commit', async () => {
      const store = await create();
      const room = fresh('room');
      const seen: number[] = [];
      const joins = await Promise.all(
        Array.from({ length: 6 }, () => store.join(request(room), async (s) => void seen.push(s.seq))),
      );
      expect(seen).toEqual([...seen].sort((x, y) => x - y));
      expect(joins.map((j) => j.seq).sort((x, y) => x - y)).toEqual(seen);
    });

    it('removes a participant on leave with a newer seq, and announces nothing for one not in the room', async () => {
      const store = await create();
      const room = fresh('room');
      const a = await store.join(request(room), none);
      const b = await store.join(request(room), none);
      const announced: Departure[] = [];
      const left = await store.leave({ room, participantId: a.self.id }, 'node-a', async (d) => void announced.push(d));
      expect(left).toEqual({ room, participantId: a.self.id, reason: 'left', seq: expect.any(Number) });
      expect(left!.seq).toBeGreaterThan(b.seq);
      expect(announced).toEqual([left]);
      expect(await store.leave({ room, participantId: a.self.id }, 'node-a', async (d) => void announced.push(d))).toBeNull();
      expect(
        await store.leave({ room: fresh('room'), participantId: b.self.id }, 'node-a', async (d) => void announced.push(d)),
      ).toBeNull();
      expect(announced).toHaveLength(1);
      expect((await store.join(request(room), none)).peers).toEqual([b.self]);
    });

    it('writes state by compare-and-set: one winner per version, the loser sees the current value', async () => {
      const store = await create();
      const room = fresh('room');
      const p = await store.join(request(room), none);
      const m = { room, participantId: p.self.id };
      const results = await Promise.all([1, 2, 3].map((n) => store.writeState(m, 0, { n }, none)));
      expect(results.filter((r) => r.ok)).toEqual([{ ok: true, version: 1 }]);
      const losers = results.filter((r) => !r.ok) as { ok: false; current: { version: number } }[];
      for (const l of losers) expect(l.current.version).toBe(1);
      expect((await store.readState(room)).version).toBe(1);
      const announced: number[] = [];
      expect(await store.writeState(m, 1, { n: 9 }, async (v) => void announced.push(v))).toEqual({ ok: true, version: 2 });
      expect(announced).toEqual([2]);
      expect(await store.readState(room)).toEqual({ version: 2, data: { n: 9 } });
    });

    it('resumes a participant once, with its own hash, in its own room, while its grace lasts', async () => {
      const store = await create();
      const room = fresh('room');
      const req = request(room);
      const other = await store.join(request(room), none);
      await store.join(req, none);
      await store.disconnect(
        [{ room, participantId: req.participantId, resumeHash: req.resumeHash }],
        'node-a',
        60_000,
        'disconnected',
      );
      const base = { room, participantId: req.participantId, nodeId: 'node-b', identity: null };
      expect(await store.resume({ ...base, resumeHash: 'wrong', nextResumeHash: 'x' })).toBeNull();
      expect(await store.resume({ ...base, room: fresh('room'), resumeHash: req.resumeHash, nextResumeHash: 'x' })).toBeNull();
      const resumed = await store.resume({ ...base, resumeHash: req.resumeHash, nextResumeHash: 'next' });
      expect(resumed).toMatchObject({ self: { id: req.participantId }, previousNodeId: null });
      expect(resumed!.peers.map((p) => p.id)).toEqual([other.self.id]);
      expect(await store.resume({ ...base, resumeHash: req.resumeHash, nextResumeHash: 'again' })).toBeNull();
      // Still connected on node-b: a resume elsewhere names node-b as the one to let go.
      expect(await store.resume({ ...base, nodeId: 'node-c', resumeHash: 'next', nextResumeHash: 'n2' })).toMatchObject({
        previousNodeId: 'node-b',
      });
    });

    it('counts each resume in the epoch, and takes a retried resume once its connection has ended', async () => {
      const store = await create();
      const room = fresh('room');
      const req = request(room);
      await store.join(req, none);
      const base = { room, participantId: req.participantId, nodeId: 'node-b', identity: null };
      expect(await store.resume({ ...base, resumeHash: req.resumeHash, nextResumeHash: 'h1' })).toMatchObject({ epoch: 1 });
      // While the resumed connection is live, the token it replaced is refused.
      expect(await store.resume({ ...base, nodeId: 'node-c', resumeHash: req.resumeHash, nextResumeHash: 'h1' })).toBeNull();
      // Its `joined` was lost and the connection ended: the same resume again is taken.
      await store.disconnect([{ room, participantId: req.participantId, resumeHash: 'h1' }], 'node-b', 60_000, 'disconnected');
      expect(await store.resume({ ...base, nodeId: 'node-c', resumeHash: req.resumeHash, nextResumeHash: 'h1' })).toMatchObject({
        epoch: 2,
      });
      expect(await store.resume({ ...base, resumeHash: 'h1', nextResumeHash: 'h2' })).toMatchObject({ epoch: 3 });
      expect(await store.resume({ ...base, resumeHash: req.resumeHash, nextResumeHash: 'h1' })).toBeNull();
    });

    it('reads a room back as it stands: seq, participants and state', async () => {
      const store = await create();
      const room = fresh('room');
      expect(await store.readRoom(room)).toEqual({ seq: 0, peers: [], state: { version: 0, data: null } });
      const first = await store.join(request(room), none);
      const second = await store.join(request(room), none);
      await store.writeState({ room, participantId: first.self.id }, 0, { k: 1 }, none);
      const read = await store.readRoom(room);
      expect(read.seq).toBe(second.seq);
      expect(read.peers.map((p) => p.id)).toEqual([first.self.id, second.self.id]);
      expect(read.state).toEqual({ version: 1, data: { k: 1 } });
    });

    it('reaps participants whose grace ran out, with the reason they disconnected for', async () => {
      const store = await create();
      const room = fresh('room');
      const quiet = request(room);
      const lost = request(room);
      const staying = request(room);
      for (const r of [quiet, lost, staying]) await store.join(r, none);
      const held = (r: JoinRequest) => [{ room, participantId: r.participantId, resumeHash: r.resumeHash }];
      await store.disconnect(held(quiet), 'node-a', 0, 'timeout');
      await store.disconnect(held(lost), 'node-a', 0, 'disconnected');
      await store.disconnect(held(staying), 'node-a', 60_000, 'disconnected');
      await pause(5);
      const announced: Departure[] = [];
      const reaped = await store.reap(60_000, async (d) => void announced.push(d));
      expect(reaped.map((d) => [d.participantId, d.reason]).sort()).toEqual(
        [
          [quiet.participantId, 'timeout'],
          [lost.participantId, 'disconnected'],
        ].sort(),
      );
      expect(announced).toEqual(reaped);
      expect(
        await store.resume({
          room,
          participantId: lost.participantId,
          resumeHash: lost.resumeHash,
          nextResumeHash: 'x',
          nodeId: 'b',
          identity: null,
        }),
      ).toBeNull();
    });

    it('ignores a late grace for a connection the participant has since resumed from', async () => {
      const store = await create();
      const room = fresh('room');
      const req = request(room);
      await store.join(req, none);
      // Resumed on the same node with a new hash while the old connection's grace was still queued.
      await store.disconnect(
        [{ room, participantId: req.participantId, resumeHash: req.resumeHash }],
        'node-a',
        60_000,
        'disconnected',
      );
      await store.resume({
        room,
        participantId: req.participantId,
        identity: null,
        resumeHash: req.resumeHash,
        nextResumeHash: 'h2',
        nodeId: 'node-a',
      });
      await store.disconnect(
        [{ room, participantId: req.participantId, resumeHash: req.resumeHash }],
        'node-a',
        0,
        'disconnected',
      );
      await pause(5);
      expect((await store.reap(60_000, none)).filter((d) => d.room === room)).toEqual([]);
    });

    it('counts participants in grace toward room-full only up to the caps per identity and per room', async () => {
      const store = await create();
      const room = fresh('room');
      const caps = { maxParticipants: 4, maxGracePerRoom: 2, maxGracePerIdentity: 1 };
      const dropped = async (identity: string | null) => {
        const req = request(room, { ...caps, identity });
        await store.join(req, none);
        await store.disconnect(
          [{ room, participantId: req.participantId, resumeHash: req.resumeHash }],
          'node-a',
          60_000,
          'disconnected',
        );
        return req;
      };
      // Five of one identity in grace hold one seat; two more (another identity, and anonymous) the
      // rest of the room's two grace seats.
      for (let i = 0; i < 5; i++) await dropped('mallory');
      await dropped('trudy');
      await dropped(null);
      await store.join(request(room, { ...caps, identity: 'alice' }), none);
      await store.join(request(room, { ...caps, identity: 'bob' }), none);
      await expect(store.join(request(room, { ...caps, identity: 'carol' }), none)).rejects.toMatchObject({ code: 'room-full' });
      // Without caps every one of the nine holds its seat.
      await expect(store.join(request(room, { maxParticipants: 9 }), none)).rejects.toMatchObject({ code: 'room-full' });
      await expect(store.join(request(room, { maxParticipants: 10 }), none)).resolves.toBeDefined();
    });

    it('resumes only for the identity that joined', async () => {
      const store = await create();
      const room = fresh('room');
      const req = request(room, { identity: 'alice' });
      await store.join(req, none);
      const attempt = {
        room,
        participantId: req.participantId,
        resumeHash: req.resumeHash,
        nextResumeHash: 'n',
        nodeId: 'node-b',
      };
      expect(await store.resume({ ...attempt, identity: 'mallory' })).toBeNull();
      expect(await store.resume({ ...attempt, identity: null })).toBeNull();
      expect(await store.resume({ ...attempt, identity: 'alice' })).toMatchObject({ self: { id: req.participantId } });
    });

    it("keeps where a participant's identity and grants came from across resumes, unless a resume re-decides them", async () => {
      const store = await create();
      const room = fresh('room');
      const access = { source: 'hook' as const, grants: ['signal' as const], recheckAt: '2030-01-01T00:00:00.000Z' };
      const req = request(room, { identity: 'carol', access });
      await store.join(req, none);
      const base = { room, participantId: req.participantId, nodeId: 'node-b' };
      // Undefined identity: the resume secret alone decides (a hook not asked on resume).
      const kept = await store.resume({ ...base, identity: undefined, resumeHash: req.resumeHash, nextResumeHash: 'r1' });
      expect(kept).toMatchObject({ identity: 'carol', access });
      const narrowed = { source: 'hook' as const, grants: [], recheckAt: null };
      const redecided = await store.resume({
        ...base,
        identity: 'carol',
        access: narrowed,
        resumeHash: 'r1',
        nextResumeHash: 'r2',
      });
      expect(redecided).toMatchObject({ identity: 'carol', access: narrowed });
      const again = await store.resume({ ...base, identity: 'carol', resumeHash: 'r2', nextResumeHash: 'r3' });
      expect(again?.access).toEqual(narrowed);
      // A join that recorded nothing reads back as nothing recorded.
      const bare = request(room);
      await store.join(bare, none);
      const resumed = await store.resume({
        ...base,
        participantId: bare.participantId,
        identity: null,
        resumeHash: bare.resumeHash,
        nextResumeHash: 'b1',
      });
      expect(resumed).toMatchObject({ identity: null, access: null });
    });

    it('leaves a participant alone when the grace is recorded by a node that no longer holds it', async () => {
      const store = await create();
      const room = fresh('room');
      const req = request(room);
      await store.join(req, none);
      await store.disconnect(
        [{ room, participantId: req.participantId, resumeHash: req.resumeHash }],
        'some-other-node',
        0,
        'disconnected',
      );
      await pause(5);
      expect(await store.reap(60_000, none)).toEqual([]);
    });

    it('evicts the connected participants of a gone node, and only those', async () => {
      const store = await create();
      const room = fresh('room');
      const gone = fresh('node');
      const onGone = request(room, { nodeId: gone });
      const elsewhere = request(room, { nodeId: 'node-a' });
      await store.join(onGone, none);
      await store.join(elsewhere, none);
      const departures = await store.evictNode(gone, none);
      expect(departures).toEqual([
        { room, participantId: onGone.participantId, reason: 'disconnected', seq: expect.any(Number) },
      ]);
      expect((await store.join(request(room), none)).peers.map((p) => p.id)).toEqual([elsewhere.participantId]);
    });

    it('takes the participants of a node that stopped heartbeating', async () => {
      const store = await create();
      const room = fresh('room');
      const silent = fresh('node');
      await store.heartbeat(silent, 'up');
      const req = request(room, { nodeId: silent });
      await store.join(req, none);
      await pause(20);
      const reaped = await store.reap(10, none);
      expect(reaped.filter((d) => d.room === room)).toEqual([
        { room, participantId: req.participantId, reason: 'disconnected', seq: expect.any(Number) },
      ]);
    });

    it('judges no node dead when asked not to, but still reaps expired grace periods', async () => {
      const store = await create();
      const room = fresh('room');
      const silent = fresh('node');
      await store.heartbeat(silent, 'up');
      const onSilent = request(room, { nodeId: silent });
      const expired = request(room);
      await store.join(onSilent, none);
      await store.join(expired, none);
      await store.disconnect(
        [{ room, participantId: expired.participantId, resumeHash: expired.resumeHash }],
        'node-a',
        0,
        'disconnected',
      );
      await pause(20);
      const reaped = (await store.reap(null, none)).filter((d) => d.room === room);
      expect(reaped.map((d) => d.participantId)).toEqual([expired.participantId]);
    });

    it('goes on past a room whose removals fail, and marks a silent node dead only once it holds nobody', async () => {
      const store = await create();
      const [fine, refused] = [fresh('room'), fresh('room')];
      const silent = fresh('node');
      await store.heartbeat(silent, 'up');
      const inFine = request(fine, { nodeId: silent });
      const inRefused = request(refused, { nodeId: silent });
      await store.join(inFine, none);
      await store.join(inRefused, none);
      await pause(20);
      const failed: string[] = [];
      const refuse = async (d: Departure) => {
        if (d.room === refused) throw new Error('publish refused');
      };
      const first = (await store.reap(10, refuse, (room) => failed.push(room))).filter(
        (d) => d.room === fine || d.room === refused,
      );
      expect(first.map((d) => d.participantId)).toEqual([inFine.participantId]);
      expect(failed).toContain(refused);
      // Still holding someone, so not marked dead: its heartbeat is taken.
      expect(await store.heartbeat(silent, 'up')).toBe('alive');
      await pause(20);
      const second = (await store.reap(10, none, () => {})).filter((d) => d.room === refused);
      expect(second.map((d) => d.participantId)).toEqual([inRefused.participantId]);
      // Now it is dead, and a heartbeat does not revive it; registering again does.
      expect(await store.heartbeat(silent, 'up')).toBe('judged-dead');
      await store.registerNode(silent, 'up');
      expect(await store.heartbeat(silent, 'up')).toBe('alive');
    });

    it('finds a node marked dead again while it still holds connected participants', async () => {
      const store = await create();
      const room = fresh('room');
      const silent = fresh('node');
      await store.heartbeat(silent, 'up');
      await pause(20);
      await store.reap(10, none, () => {});
      expect(await store.heartbeat(silent, 'up')).toBe('judged-dead');
      // A join that committed after the node was marked dead.
      const late = request(room, { nodeId: silent });
      await store.join(late, none);
      await pause(20);
      const reaped = (await store.reap(10, none, () => {})).filter((d) => d.room === room);
      expect(reaped.map((d) => d.participantId)).toEqual([late.participantId]);
    });

    it('retracts a join whatever became of it, announcing a fresh seq each time', async () => {
      const store = await create();
      const room = fresh('room');
      const stays = request(room);
      await store.join(stays, none);
      const committed = request(room);
      await store.join(committed, none);
      const announced: Departure[] = [];
      const removed = await store.retractJoin(
        { room, participantId: committed.participantId },
        'node-a',
        async (d) => void announced.push(d),
      );
      expect(removed).toEqual({ room, participantId: committed.participantId, reason: 'disconnected', seq: expect.any(Number) });
      expect(announced).toEqual([removed]);
      // A join that never committed is still announced as gone: its peer-joined went out.
      const never = await store.retractJoin({ room, participantId: fresh('p') }, 'node-a', none);
      expect(never!.seq).toBeGreaterThan(removed!.seq);
      expect((await store.join(request(room), none)).peers.map((p) => p.id)).toEqual([stays.participantId]);
      // No room, nobody who could have seen the join.
      expect(await store.retractJoin({ room: fresh('room'), participantId: fresh('p') }, 'node-a', none)).toBeNull();
    });

    it('grants a lease to one holder at a time until it lapses', async () => {
      const store = await create();
      const lease = fresh('lease');
      expect(await store.acquireLease(lease, 'a', 60_000)).toBe(true);
      expect(await store.acquireLease(lease, 'b', 60_000)).toBe(false);
      expect(await store.acquireLease(lease, 'a', 1)).toBe(true);
      await pause(20);
      expect(await store.acquireLease(lease, 'b', 60_000)).toBe(true);
      expect(await store.acquireLease(lease, 'a', 60_000)).toBe(false);
    });
  });
}
