// RoomStore in memory: the twin of PostgresStore for unit tests of the rooms layer. It keeps the
// same rules (room-full, compare-and-set, grace, single-use resume, serialised membership changes
// with announcements before they take effect) without a database.
import type { StoredAccess } from '../auth/access.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Peer, PeerLeftReason, RoomState } from '../protocol/messages.js';
import type {
  Announce,
  Departure,
  HeartbeatResult,
  HeldMembership,
  JoinRequest,
  Membership,
  OnRoomFailure,
  ResumeRequest,
  ResumeResult,
  RoomRecord,
  RoomSnapshot,
  RoomStore,
  StateWrite,
} from './store.js';
import { seatsTaken } from './seats.js';

interface Row {
  peer: Peer;
  identity: string | null;
  access: StoredAccess | null;
  room: string;
  nodeId: string;
  status: 'connected' | 'disconnected';
  reason: 'disconnected' | 'timeout' | null;
  graceUntil: number;
  resumeHash: string;
  epoch: number;
}

interface Room {
  state: RoomState;
  seq: number;
  lock: Promise<void>;
}

export class MemoryStore implements RoomStore {
  private readonly rooms = new Map<string, Room>();
  private readonly participants = new Map<string, Row>();
  private readonly heartbeats = new Map<string, { at: number; status: string; isBusUp?: boolean }>();
  private readonly leases = new Map<string, { holder: string; until: number }>();
  private seq = 0;
  /** Flip to make every call fail, as a database outage would. */
  isDown = false;

  constructor(private readonly now: () => number = Date.now) {}

  async join(req: JoinRequest, announce: Announce<RoomSnapshot>): Promise<RoomSnapshot> {
    return this.locked(req.room, async (room) => {
      const peers = this.peersOf(req.room);
      const inRoom = [...this.participants.values()].filter((r) => r.room === req.room);
      if (seatsTaken(inRoom, req) >= req.maxParticipants)
        throw new ProtocolError('room-full', `room is full (${req.maxParticipants})`);
      const seq = ++this.seq;
      const snapshot = { self: { id: req.participantId, name: req.name, meta: req.meta }, peers, state: room.state, seq };
      await announce(snapshot);
      room.seq = seq;
      this.participants.set(req.participantId, {
        peer: snapshot.self,
        identity: req.identity,
        access: req.access ?? null,
        room: req.room,
        nodeId: req.nodeId,
        status: 'connected',
        reason: null,
        graceUntil: 0,
        resumeHash: req.resumeHash,
        epoch: 0,
      });
      return snapshot;
    });
  }

  async resume(req: ResumeRequest): Promise<ResumeResult | null> {
    if (!this.rooms.has(req.room)) return null;
    return this.locked(req.room, async (room) => {
      const row = this.participants.get(req.participantId);
      const isLive = row && (row.status === 'connected' || row.graceUntil > this.now());
      const isRetry = row?.status === 'disconnected' && row.resumeHash === req.nextResumeHash;
      const isKnownHash = row?.resumeHash === req.resumeHash || isRetry;
      const isOtherIdentity = req.identity !== undefined && row?.identity !== req.identity;
      if (!row || row.room !== req.room || !isLive || !isKnownHash || isOtherIdentity) return null;
      const previousNodeId = row.status === 'connected' && row.nodeId !== req.nodeId ? row.nodeId : null;
      const lastNodeId = row.nodeId;
      const epoch = row.epoch + 1;
      Object.assign(row, {
        nodeId: req.nodeId,
        status: 'connected',
        reason: null,
        graceUntil: 0,
        resumeHash: req.nextResumeHash,
        epoch,
        access: req.access ?? row.access,
      });
      const peers = this.peersOf(req.room).filter((p) => p.id !== req.participantId);
      const { identity, access } = row;
      return { self: row.peer, peers, state: room.state, seq: room.seq, previousNodeId, lastNodeId, epoch, identity, access };
    });
  }

  async leave(
    m: Membership,
    _nodeId: string,
    announce: Announce<Departure>,
    reason: 'left' | 'kicked' = 'left',
  ): Promise<Departure | null> {
    const removed = await this.remove(
      m.room,
      [m.participantId],
      () => true,
      () => reason,
      announce,
    );
    return removed[0] ?? null;
  }

  async disconnect(ms: HeldMembership[], nodeId: string, graceMs: number, reason: 'disconnected' | 'timeout'): Promise<void> {
    this.check();
    for (const m of ms) {
      const row = this.participants.get(m.participantId);
      if (!row || row.nodeId !== nodeId || row.status !== 'connected' || row.resumeHash !== m.resumeHash) continue;
      Object.assign(row, { status: 'disconnected', reason, graceUntil: this.now() + graceMs });
    }
  }

  async writeState(
    m: Membership,
    expectedVersion: number,
    data: Record<string, unknown>,
    announce: Announce<number>,
  ): Promise<StateWrite> {
    return this.locked(m.room, async (room) => {
      if (room.state.version !== expectedVersion) return { ok: false, current: room.state };
      const version = expectedVersion + 1;
      await announce(version);
      room.state = { version, data };
      return { ok: true, version };
    });
  }

  async readState(room: string): Promise<RoomState> {
    this.check();
    return this.rooms.get(room)?.state ?? { version: 0, data: null };
  }

  async readRoom(room: string): Promise<RoomRecord> {
    this.check();
    const r = this.rooms.get(room);
    return { seq: r?.seq ?? 0, peers: this.peersOf(room), state: r?.state ?? { version: 0, data: null } };
  }

  async heartbeat(nodeId: string, status: 'up' | 'draining', isBusUp = true): Promise<HeartbeatResult> {
    this.check();
    if (this.heartbeats.get(nodeId)?.status === 'dead') return 'judged-dead';
    this.heartbeats.set(nodeId, { at: this.now(), status, isBusUp });
    return 'alive';
  }

  async hasPeerWithBus(nodeId: string, withinMs: number): Promise<boolean> {
    this.check();
    const since = this.now() - withinMs;
    return [...this.heartbeats].some(([id, h]) => id !== nodeId && h.status !== 'dead' && h.isBusUp !== false && h.at >= since);
  }

  async registerNode(nodeId: string, status: 'up' | 'draining'): Promise<void> {
    this.check();
    this.heartbeats.set(nodeId, { at: this.now(), status });
  }

  async evictNode(nodeId: string, announce: Announce<Departure>, onRoomFailure?: OnRoomFailure): Promise<Departure[]> {
    this.check();
    const matches = (r: Row) => r.nodeId === nodeId && r.status === 'connected';
    const departures = await this.removeWhere(matches, () => 'disconnected', announce, onRoomFailure);
    const node = this.heartbeats.get(nodeId);
    if (node && ![...this.participants.values()].some(matches)) node.status = 'dead';
    return departures;
  }

  async retractJoin(m: Membership, nodeId: string, announce: Announce<Departure>): Promise<Departure | null> {
    if (!this.rooms.has(m.room)) return null;
    return this.locked(m.room, async (room) => {
      const departure: Departure = { room: m.room, participantId: m.participantId, reason: 'disconnected', seq: ++this.seq };
      await announce(departure);
      room.seq = departure.seq;
      this.participants.delete(m.participantId);
      return departure;
    });
  }

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    this.check();
    const lease = this.leases.get(name);
    if (lease && lease.holder !== holder && lease.until >= this.now()) return false;
    this.leases.set(name, { holder, until: this.now() + ttlMs });
    return true;
  }

  async reap(
    deadAfterMs: number | null,
    announce: Announce<Departure>,
    onRoomFailure?: OnRoomFailure,
    spared: readonly string[] = [],
  ): Promise<Departure[]> {
    this.check();
    const departures: Departure[] = [];
    for (const [id, node] of this.heartbeats) {
      const isSilent = deadAfterMs !== null && node.at < this.now() - deadAfterMs && !spared.includes(id);
      const holdsSomeone = [...this.participants.values()].some((r) => r.nodeId === id && r.status === 'connected');
      if (isSilent && (node.status !== 'dead' || holdsSomeone))
        departures.push(...(await this.evictNode(id, announce, onRoomFailure)));
    }
    const expired = (r: Row) => r.status === 'disconnected' && r.graceUntil < this.now();
    departures.push(...(await this.removeWhere(expired, (r) => r.reason ?? 'disconnected', announce, onRoomFailure)));
    return departures;
  }

  async ping(): Promise<void> {
    this.check();
  }

  /** Never: in memory nothing waits for an answer, so a ping alone tells whether it is up. */
  lastAnsweredAt(): number {
    return 0;
  }

  private async removeWhere(
    matches: (r: Row) => boolean,
    reasonOf: (r: Row) => PeerLeftReason,
    announce: Announce<Departure>,
    onRoomFailure?: OnRoomFailure,
  ) {
    const byRoom = new Map<string, string[]>();
    for (const [id, row] of this.participants) if (matches(row)) byRoom.set(row.room, [...(byRoom.get(row.room) ?? []), id]);
    const departures: Departure[] = [];
    const failures: unknown[] = [];
    for (const [room, ids] of byRoom) {
      try {
        departures.push(...(await this.remove(room, ids, matches, reasonOf, announce)));
      } catch (err) {
        if (onRoomFailure) onRoomFailure(room, err);
        else failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
    return departures;
  }

  private remove(
    roomName: string,
    ids: string[],
    stillMatches: (r: Row) => boolean,
    reasonOf: (r: Row) => PeerLeftReason,
    announce: Announce<Departure>,
  ): Promise<Departure[]> {
    if (!this.rooms.has(roomName)) return Promise.resolve([]);
    return this.locked(roomName, async (room) => {
      const out: Departure[] = [];
      for (const id of ids) {
        const row = this.participants.get(id);
        if (!row || row.room !== roomName || !stillMatches(row)) continue;
        const departure: Departure = { room: roomName, participantId: id, reason: reasonOf(row), seq: ++this.seq };
        await announce(departure);
        room.seq = departure.seq;
        this.participants.delete(id);
        out.push(departure);
      }
      return out;
    });
  }

  private peersOf(room: string): Peer[] {
    return [...this.participants.values()].filter((r) => r.room === room).map((r) => r.peer);
  }

  /** Runs `work` holding the room's lock, like a transaction holding the row lock. */
  private async locked<T>(name: string, work: (room: Room) => Promise<T>): Promise<T> {
    this.check();
    let room = this.rooms.get(name);
    if (!room) this.rooms.set(name, (room = { state: { version: 0, data: null }, seq: 0, lock: Promise.resolve() }));
    const previous = room.lock;
    let release!: () => void;
    room.lock = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      this.check();
      return await work(room);
    } finally {
      release();
    }
  }

  private check(): void {
    if (this.isDown) throw new Error('database unavailable');
  }
}
