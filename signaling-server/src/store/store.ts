// The storage interface of the domain: rooms, participants, the event log, node heartbeats and
// leases. PostgresStore implements it on Postgres or PGlite; MemoryStore is its twin for unit tests.
import type { StoredAccess } from '../auth/access.js';
import type { Peer, PeerLeftReason, RoomState } from '../protocol/messages.js';
import type { SeatCaps } from './seats.js';

export interface RoomSnapshot {
  self: Peer;
  peers: Peer[];
  state: RoomState;
  /** The room's membership sequence after this change; events with a higher seq are newer. */
  seq: number;
}

/** The grace caps (seats.ts) decide how many participants in grace count toward maxParticipants. */
export interface JoinRequest extends SeatCaps {
  room: string;
  participantId: string;
  nodeId: string;
  name: string;
  meta: Record<string, unknown>;
  identity: string | null;
  /** Where the identity and grants came from, and the grants; absent: not recorded (null in the row). */
  access?: StoredAccess;
  resumeHash: string;
  maxParticipants: number;
}

export interface ResumeRequest {
  room: string;
  participantId: string;
  /**
   * The identity of whoever resumes (its token's or the join hook's `sub`); must match the
   * participant's (null in anonymous mode). Undefined: not compared, the resume secret alone
   * decides (a join hook that is not asked on resume, without tokens).
   */
  identity: string | null | undefined;
  /** The access the join hook gave this resume; replaces the stored one. Absent: the stored one stays. */
  access?: StoredAccess;
  /** sha256 of the secret the client presented. */
  resumeHash: string;
  /**
   * Replaces the stored hash. A stored hash already equal to it, on a participant whose connection
   * has ended, means this same resume is being tried again (its `joined` was lost): that is taken
   * too. While that connection is live, the older token is refused.
   */
  nextResumeHash: string;
  nodeId: string;
}

export interface ResumeResult extends RoomSnapshot {
  /** The node that held the participant's socket before, when it was still marked connected. */
  previousNodeId: string | null;
  /** The node that held (or last held) the participant before this resume, whatever its status. */
  lastNodeId: string;
  /** The new membership's epoch: one more than the one it takes over. */
  epoch: number;
  /** The participant's identity and access as stored now (null access: joined before it was recorded). */
  identity: string | null;
  access: StoredAccess | null;
}

/** A room as the database has it now. */
export interface RoomRecord {
  seq: number;
  peers: Peer[];
  state: RoomState;
}

export interface Departure {
  room: string;
  participantId: string;
  reason: PeerLeftReason;
  seq: number;
}

export type StateWrite = { ok: true; version: number } | { ok: false; current: RoomState };

export interface Membership {
  room: string;
  participantId: string;
}

/** A membership as one connection held it: the resume hash tells it apart from a later resume. */
export interface HeldMembership extends Membership {
  resumeHash: string;
}

/**
 * Called inside the transaction, under the room's lock, before it commits: the room's events are
 * published in the order the database serialised them, and a change whose event could not be
 * published is rolled back.
 */
export type Announce<T> = (event: T) => Promise<unknown>;

/**
 * A room whose removals failed (its lock timed out, its event could not be published): that room's
 * transaction rolled back and the rest of the round went on. The next round finds them again.
 */
export type OnRoomFailure = (room: string, err: unknown) => void;

/** What a node's heartbeat found: its row live, or marked dead by the reaper while it was away. */
export type HeartbeatResult = 'alive' | 'judged-dead';

/**
 * Thrown when a COMMIT failed (timed out, or its connection died): the change may or may not have
 * happened, and its event was already published. Also when the change was rolled back because its
 * event's publish failed after it was sent: the event may reach peers all the same. The store
 * reports it to its `onCommitUnknown` hook before throwing, so that someone settles it
 * (cluster/settler.ts).
 */
export class CommitOutcomeUnknown extends Error {
  constructor(
    readonly op: 'join' | 'leave',
    cause: unknown,
  ) {
    super(`the outcome of a ${op} is unknown to its peers (${String(cause)})`, { cause });
  }
}

/** A join or leave whose COMMIT failed, to be settled in the background. */
export interface UnsettledChange extends Membership {
  op: 'join' | 'leave';
  nodeId: string;
}

export interface RoomStore {
  /** Adds a participant; throws ProtocolError('room-full') at the limit, counted cluster-wide. */
  join(req: JoinRequest, announce: Announce<RoomSnapshot>): Promise<RoomSnapshot>;
  /** Takes a participant over with its resume secret; null when the token is unknown, used or expired. */
  resume(req: ResumeRequest): Promise<ResumeResult | null>;
  /** Removes a participant; `kicked` when an operator removes it (any node may do that). */
  leave(m: Membership, nodeId: string, announce: Announce<Departure>, reason?: 'left' | 'kicked'): Promise<Departure | null>;
  /**
   * Starts the grace period of participants whose connection ended without `leave`; a participant
   * that was resumed since (its resume hash changed) is left alone.
   */
  disconnect(ms: HeldMembership[], nodeId: string, graceMs: number, reason: 'disconnected' | 'timeout'): Promise<void>;
  writeState(
    m: Membership,
    expectedVersion: number,
    data: Record<string, unknown>,
    announce: Announce<number>,
  ): Promise<StateWrite>;
  readState(room: string): Promise<RoomState>;
  /** Membership and state of a room, for a node that must heal its view after a bus gap. */
  readRoom(room: string): Promise<RoomRecord>;
  /**
   * Records that the node is alive, unless the reaper has marked it dead: a dead row is never
   * revived by a heartbeat (the node must learn it was judged dead and registerNode() again).
   */
  heartbeat(nodeId: string, status: 'up' | 'draining', isBusUp?: boolean): Promise<HeartbeatResult>;
  /** Another node, not dead, heartbeat within the last `withinMs` saying it could reach the bus. */
  hasPeerWithBus(nodeId: string, withinMs: number): Promise<boolean>;
  /** Writes the node's row as alive whatever it said: at start, and after learning it was judged dead. */
  registerNode(nodeId: string, status: 'up' | 'draining'): Promise<void>;
  /**
   * Removes the participants a node still holds as connected, room by room (a failing room is
   * reported to `onRoomFailure` and the others still go; without it, the first failure is thrown
   * once every room was tried), then marks the node dead if none is left.
   */
  evictNode(nodeId: string, announce: Announce<Departure>, onRoomFailure?: OnRoomFailure): Promise<Departure[]>;
  /** One lease holder at a time, until ttl passes without renewal. */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /**
   * Removes participants whose grace ran out, and those of nodes that stopped heartbeating for
   * deadAfterMs (null: judge no node dead this round). A node whose heartbeat is stale is found
   * again each round while it still holds connected participants, even once marked dead; it is
   * marked dead only when none is left. A failing room is reported and the round goes on. Nodes in
   * `spared` are judged alive whatever their database heartbeat says (they beat elsewhere: Redis).
   */
  reap(
    deadAfterMs: number | null,
    announce: Announce<Departure>,
    onRoomFailure?: OnRoomFailure,
    spared?: readonly string[],
  ): Promise<Departure[]>;
  /**
   * Undoes a join whose COMMIT outcome is unknown: removes the participant if the join did commit,
   * and in any case announces its departure with a fresh seq, since its peer-joined went out
   * before the commit. Null when the room does not exist (nobody can have seen the join).
   */
  retractJoin(m: Membership, nodeId: string, announce: Announce<Departure>): Promise<Departure | null>;
  ping(): Promise<void>;
  /** When (`performance.now()`) the database last answered a query; 0 if it never has. */
  lastAnsweredAt(): number;
}

/**
 * A change as the webhook outbox sees it. The store hands each one to its ChangeRecorder inside
 * the change's own transaction, so a recorded change and the change commit or roll back together.
 */
export type RoomChange =
  | { kind: 'joined'; room: string; participant: Peer; identity: string | null; nodeId: string; isFirst: boolean }
  | { kind: 'left'; room: string; participantId: string; reason: PeerLeftReason }
  | { kind: 'state'; room: string; version: number; by: string };
