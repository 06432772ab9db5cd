// The domain of one node: join, leave, signal, broadcast, state and resume, as protocol v1 says;
// the rooms layer's public face and each member's request queue. It holds only what it can rebuild
// (local members and room views, kept by LocalRooms); the database holds membership and state, the
// bus carries everything between nodes. Signals and broadcasts touch neither the database nor any
// await on their way out.
import type { Logger } from 'pino';
import type { Grant, TokenClaims, TokenVerifier } from '../auth/token-verifier.js';
import type { Position, RoomBus } from '../bus/bus.js';
import type { GapRecords } from '../bus/gap-records.js';
import type { IceServerSource } from '../ice/ice-servers.js';
import type { Metrics } from '../metrics.js';
import { ProtocolError, isProtocolError } from '../protocol/errors.js';
import {
  encode,
  type BroadcastMessage,
  type ClientMessage,
  type JoinMessage,
  type RequestId,
  type SignalMessage,
  type StateMessage,
} from '../protocol/messages.js';
import type { SeatCaps } from '../store/seats.js';
import type { Departure, HeldMembership, RoomStore } from '../store/store.js';
import { AccessRechecks } from './access-rechecks.js';
import { Admission, hookRequestOf, type JoinHookPolicy } from './admission.js';
import { dependency } from './dependency.js';
import { DEFAULT_LOG_REPEAT_INTERVAL_MS, RepeatedWarnings } from '../log-repeats.js';
import { Kind, type ReceivedEnvelope } from './envelope.js';
import { LocalRooms } from './local-rooms.js';
import { formatResumeToken } from './resume-token.js';
import { RoomChannel } from './room-channel.js';
import type { RoomView } from './room-view.js';
import { LocalMember, Session, topicOf, type ClientLink, type ConnectionRequest, type LocalFanout } from './session.js';
import { SignalRouter } from './signal-router.js';

const DEFAULT_MAX_QUEUED_REQUESTS = 32;

export interface RoomServiceOptions {
  nodeId: string;
  store: RoomStore;
  bus: RoomBus;
  fanout: LocalFanout;
  metrics: Metrics;
  log: Logger;
  /** Warnings a fault repeats (failed publishes, unreachable dependencies), logged once per interval. */
  warnings?: RepeatedWarnings;
  resumeGraceMs: number;
  maxRoomsPerConnection: number;
  maxParticipantsPerRoom: number;
  /** How many participants in grace may hold seats, per room and per identity (store/seats.ts). */
  graceSeats?: SeatCaps;
  maxMetaBytes: number;
  /** Null in anonymous mode: no token needed. */
  verifier: TokenVerifier | null;
  /** The application's join hook (JOIN_HOOK_URL); absent: tokens alone decide. */
  joinHook?: JoinHookPolicy;
  /** Asks the join hook again when its answer said when; present with joinHook. */
  rechecks?: AccessRechecks;
  /** Where away participants' gaps start, and delivery checkpoints. */
  gapRecords: GapRecords;
  /** How long a resumed participant waits for its previous node's handover. */
  handoverWaitMs: number;
  /** How often delivery checkpoints are saved (0: never). */
  checkpointMs?: number;
  /** Requests one member may have waiting behind a join, state write or leave; more get `rate-limited`. */
  maxQueuedRequests?: number;
  /** How long to wait before retrying bookkeeping that failed because the database was away. */
  retryMs?: number;
  /**
   * False when the database does not answer now: joins and leaves then answer `unavailable` at
   * once instead of after DB_TIMEOUT_MS. Asked before each join and leave, so it must answer fast.
   */
  isDatabaseUp?: () => boolean | Promise<boolean>;
  /** ICE servers for `joined` and `ice-servers`, bound to the participant; absent when none are configured. */
  iceServers?: IceServerSource;
}

export class RoomService {
  private readonly nodeId: string;
  private readonly store: RoomStore;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly warnings: RepeatedWarnings;
  private readonly channel: RoomChannel;
  private readonly router: SignalRouter;
  private readonly local: LocalRooms;
  private readonly admission: Admission;
  /** Rooms whose view is being rebuilt from the database after a bus gap. */
  private readonly healing = new Set<string>();
  private readonly healAgain = new Set<string>();

  constructor(private readonly opts: RoomServiceOptions) {
    const { nodeId, store, bus, fanout, metrics, log } = opts;
    ({ nodeId: this.nodeId, store: this.store, metrics: this.metrics, log: this.log } = opts);
    this.warnings = opts.warnings ?? new RepeatedWarnings(log, DEFAULT_LOG_REPEAT_INTERVAL_MS);
    this.channel = new RoomChannel({ nodeId, bus, metrics, log });
    this.local = new LocalRooms({ channel: this.channel, fanout, metrics, log, onForget: (m) => opts.rechecks?.cancel(m) });
    this.router = new SignalRouter({
      nodeId,
      channel: this.channel,
      records: opts.gapRecords,
      members: this.local,
      metrics,
      log,
      graceMs: opts.resumeGraceMs,
      handoverWaitMs: opts.handoverWaitMs,
      checkpointMs: opts.checkpointMs ?? 250,
    });
    this.channel.onEnvelope((room, envelope, isOwn, position) => this.receive(room, envelope, isOwn, position));
    this.channel.onGap((room) => {
      this.metrics.busGaps.inc();
      // Channels that are not rooms (`#node:`, `#topic:`) have no view to heal.
      if (!room.startsWith('#')) void this.heal(room);
    });
    const { verifier, maxParticipantsPerRoom } = opts;
    this.admission = new Admission({
      nodeId,
      store,
      channel: this.channel,
      router: this.router,
      local: this.local,
      warnings: this.warnings,
      verifier,
      joinHook: opts.joinHook,
      metrics,
      maxParticipantsPerRoom,
      graceSeats: opts.graceSeats,
      onUncertainResume: (m) => void this.startGrace([m], 'disconnected'),
    });
  }

  connect(link: ClientLink, claims?: TokenClaims, request?: ConnectionRequest): Session {
    return new Session(link, claims, request);
  }

  get participantCount(): number {
    return this.local.participantCount;
  }

  /** Handles one decoded client message. Never throws: failures become `error` frames. */
  handle(session: Session, msg: ClientMessage): void {
    const requestId = msg.id;
    try {
      switch (msg.type) {
        case 'ping':
          session.link.send(encode.pong(requestId));
          return;
        case 'join':
          this.join(session, msg);
          return;
        default: {
          const member = session.memberships.get(msg.room);
          if (!member) throw new ProtocolError('not-joined', `not joined to room ${msg.room}`);
          if (!member.queue) return this.run(member, msg, requestId);
          if (member.queue.length >= (this.opts.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS)) {
            this.metrics.dropped.labels('queue-full').inc();
            throw new ProtocolError('rate-limited', 'too many requests waiting for this room; this one was dropped');
          }
          member.queue.push({ msg, requestId });
        }
      }
    } catch (err) {
      this.replyError(session, requestId, err);
    }
  }

  /**
   * The connection ended without `leave`: its participants enter their grace period, and this node
   * keeps the signals sent to them until they resume, here or elsewhere.
   */
  closeSession(session: Session, reason: 'disconnected' | 'timeout'): void {
    session.isClosed = true;
    const gone: HeldMembership[] = [];
    for (const member of session.memberships.values()) {
      if (member.status !== 'joined') continue; // a join in flight finishes the job itself
      gone.push(this.enterGrace(member));
    }
    if (gone.length > 0) void this.startGrace(gone, reason);
  }

  /** Participants that went away from this node since `since` (performance.now()) and have not resumed. */
  gapsSince(since: number): number {
    return this.router.awaySince(since);
  }

  /**
   * Resolves once every grace period started on this node so far is recorded in the database, and
   * every gap record and handover it owes is out: until then the node must keep its connections.
   */
  async settled(): Promise<void> {
    // A join in flight may end in a grace of its own (its connection closed meanwhile).
    await Promise.all(this.pendingJoins);
    await Promise.all([...this.pendingGraces, this.router.settled()]);
  }
  private readonly pendingJoins = new Set<Promise<void>>();

  /** Stops the node's timers; call before closing the bus. */
  close(): void {
    this.router.close();
    this.opts.rechecks?.close();
  }

  // ---- what arrives on the bus -----------------------------------------------------------------

  private receive(room: string, envelope: ReceivedEnvelope, isOwn: boolean, position: Position): void {
    switch (envelope.kind) {
      case Kind.Signal:
        return this.router.onSignal(room, envelope.to, envelope.frame, position);
      case Kind.Server:
        // An operator's message to one participant travels like a signal, across a resume too.
        if (envelope.to !== null) return this.router.onSignal(room, envelope.to, envelope.frame, position);
        return this.local.receive(room, envelope, isOwn);
      case Kind.Claim:
        return this.router.onClaim(room, envelope.participant, envelope.epoch, position, isOwn);
      case Kind.Handover:
        return this.router.onHandover(envelope.participant, envelope.epoch, envelope.start);
      case Kind.PeerLeft:
        this.router.forget(envelope.participant);
        return this.local.receive(room, envelope, isOwn);
      default:
        return this.local.receive(room, envelope, isOwn);
    }
  }

  /** The bus lost some of a room's messages for this node: rebuild its view from the database. */
  private async heal(room: string): Promise<void> {
    if (this.healing.has(room)) {
      // A heal is reading the room already, maybe from before this gap: it reads once more.
      this.healAgain.add(room);
      return;
    }
    this.healing.add(room);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const record = await this.store.readRoom(room);
          this.local.heal(room, record.seq, record.peers, record.state);
          this.metrics.viewResyncs.labels('healed').inc();
          this.log.warn({ room }, 'healed a room view after a bus gap');
          return;
        } catch (err) {
          if (attempt >= 5) {
            this.metrics.viewResyncs.labels('failed').inc();
            this.log.error({ err, room }, 'could not heal a room view after a bus gap');
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, (this.opts.retryMs ?? 1000) * attempt).unref());
        }
      }
    } finally {
      this.healing.delete(room);
      if (this.healAgain.delete(room)) void this.heal(room);
    }
  }
  private readonly pendingGraces = new Set<Promise<void>>();

  replyError(session: Session, requestId: RequestId | undefined, err: unknown): void {
    let error: ProtocolError;
    if (isProtocolError(err)) {
      error = err;
    } else {
      this.log.error({ err }, 'unexpected error while handling a message');
      error = new ProtocolError('internal', 'internal error');
    }
    this.metrics.errors.labels(error.code).inc();
    session.link.send(encode.error(requestId, error.code, error.message, error.extra));
  }

  // ---- per-member request queue ----------------------------------------------------------------

  private run(member: LocalMember, msg: ClientMessage, requestId: RequestId | undefined): void {
    switch (msg.type) {
      case 'signal':
        return this.signal(member, msg);
      case 'broadcast':
        return this.broadcast(member, msg);
      case 'state':
        requireGrant(member, 'state');
        return this.waitFor(member, this.writeState(member, msg));
      case 'leave':
        return this.waitFor(member, this.leave(member, requestId));
      case 'ice-servers':
        return member.session.link.send(encode.iceServers(requestId, member.room, this.opts.iceServers?.issue(member.id)));
      default:
        throw new ProtocolError('bad-request', `${msg.type} is not valid here`);
    }
  }

  /** Holds the member's later requests until `work` is done, then runs them in order. */
  private waitFor(member: LocalMember, work: Promise<void>): void {
    member.queue = [];
    void work.finally(() => this.drain(member));
  }

  private drain(member: LocalMember): void {
    const queued = member.queue ?? [];
    member.queue = null;
    for (let i = 0; i < queued.length; i++) {
      const { msg, requestId } = queued[i]!;
      const waiting = member.queue as LocalMember['queue'];
      if (waiting) {
        // An earlier request in this batch is asynchronous: the rest wait behind it again.
        waiting.push(...queued.slice(i));
        return;
      }
      try {
        if (member.status !== 'joined') throw new ProtocolError('not-joined', `not joined to room ${member.room}`);
        this.run(member, msg, requestId);
      } catch (err) {
        this.replyError(member.session, requestId, err);
      }
    }
  }

  // ---- join, resume, leave ---------------------------------------------------------------------

  private join(session: Session, msg: JoinMessage): void {
    if (session.memberships.has(msg.room)) throw new ProtocolError('already-joined', `already joined to room ${msg.room}`);
    if (session.memberships.size >= this.opts.maxRoomsPerConnection) {
      throw new ProtocolError('too-many-rooms', `at most ${this.opts.maxRoomsPerConnection} rooms per connection`);
    }
    const meta = msg.meta ?? {};
    if (Buffer.byteLength(JSON.stringify(meta)) > this.opts.maxMetaBytes) {
      throw new ProtocolError('bad-request', `meta is larger than ${this.opts.maxMetaBytes} bytes`);
    }
    const member = new LocalMember(session, msg.room);
    session.memberships.set(msg.room, member);
    const view = this.local.addJoining(member);
    const joining = this.completeJoin(member, view, msg, meta);
    this.pendingJoins.add(joining);
    void joining.finally(() => this.pendingJoins.delete(joining));
    this.waitFor(member, joining);
  }

  private async completeJoin(member: LocalMember, view: RoomView, msg: JoinMessage, meta: Record<string, unknown>) {
    const started = performance.now();
    const { session, room } = member;
    try {
      await this.refuseWhileDatabaseAway();
      const auth = await this.admission.authorize(session, msg);
      await dependency(view.subscription, this.warnings);
      const { snapshot, secret, isResumed, access, hookRequest } = await this.admission.admit(member, msg, meta, auth);
      member.grants = access.grants;
      member.identity = access.identity;
      member.seq = snapshot.seq;
      member.version = snapshot.state.version;
      view.applySnapshot(snapshot.seq, [snapshot.self.id, ...snapshot.peers.map((p) => p.id)]);
      member.status = 'joined';
      this.local.addJoined(member);
      if (session.isClosed) {
        // The connection went away while the join was in flight: the participant starts its grace,
        // and what was sent to it meanwhile is its gap, read back at its resume.
        member.held = [];
        void this.startGrace([this.enterGrace(member)], 'disconnected');
        return;
      }
      session.link.subscribe(topicOf(room));
      const token = formatResumeToken(member.id, secret);
      const ice = this.opts.iceServers?.issue(member.id);
      session.link.send(encode.joined(msg.id, room, snapshot.self, snapshot.peers, snapshot.state, token, isResumed, ice));
      this.local.deliverHolds(member);
      this.router.releaseEarly(member);
      this.router.markJoined(member.id);
      if (access.recheckAt !== null && this.opts.rechecks) {
        const request = hookRequest ?? hookRequestOf('recheck', session, msg, auth.claims);
        this.opts.rechecks.schedule(member, access.recheckAt, request);
      }
      this.metrics.joinSeconds.observe((performance.now() - started) / 1000);
      this.log.info({ room, participant: member.id, resumed: isResumed }, 'joined');
    } catch (err) {
      member.status = 'gone';
      member.held = [];
      this.router.forgetEarly(member.id);
      if (this.router.isResuming(member.id)) {
        // The database took the participant over but its Claim never made it: it goes to grace
        // here, and a retry with the same token reads back the same gap.
        this.router.abandonResume(member);
        void this.startGrace([{ room, participantId: member.id, resumeHash: member.resumeHash }], 'disconnected');
      }
      this.local.forget(member);
      if (!session.isClosed) this.replyError(session, msg.id, err);
    }
  }

  private async leave(member: LocalMember, requestId: RequestId | undefined): Promise<void> {
    const { session, room } = member;
    try {
      await this.refuseWhileDatabaseAway();
      const left = this.store.leave({ room, participantId: member.id }, this.nodeId, (d) => this.announceDeparture(d));
      await dependency(left, this.warnings);
      this.local.drop(member);
      if (!session.isClosed) session.link.send(encode.left(requestId, room));
      this.log.info({ room, participant: member.id }, 'left');
    } catch (err) {
      if (!session.isClosed) this.replyError(session, requestId, err);
    }
  }

  private async refuseWhileDatabaseAway(): Promise<void> {
    if ((await this.opts.isDatabaseUp?.()) === false)
      throw new ProtocolError('unavailable', 'the database is unreachable; retry later');
  }

  /** Publishes a participant's departure to its room; the store calls it before committing. */
  announceDeparture(d: Departure): Promise<unknown> {
    const frame = encode.peerLeft(d.room, d.participantId, d.reason);
    return this.channel.publish(d.room, { kind: Kind.PeerLeft, participant: d.participantId, seq: d.seq, frame });
  }

  /** Lets go of a member whose connection ended without `leave`; its gap is kept for its resume. */
  private enterGrace(member: LocalMember): HeldMembership {
    this.router.goAway(member);
    this.local.drop(member);
    return { room: member.room, participantId: member.id, resumeHash: member.resumeHash };
  }

  /** Records grace periods, retrying until the database takes them. */
  private startGrace(members: HeldMembership[], reason: 'disconnected' | 'timeout'): Promise<void> {
    const done = new Promise<void>((resolve) => {
      const attempt = () =>
        this.store.disconnect(members, this.nodeId, this.opts.resumeGraceMs, reason).then(resolve, (err) => {
          // Until this lands the rows say "connected" on a live node: nobody would ever reap them.
          this.metrics.backgroundErrors.labels('record-grace').inc();
          this.log.warn({ err, participants: members.length }, 'could not record disconnects; retrying');
          setTimeout(attempt, this.opts.retryMs ?? 1000).unref();
        });
      attempt();
    });
    this.pendingGraces.add(done);
    void done.then(() => this.pendingGraces.delete(done));
    return done;
  }

  // ---- signal, broadcast, state ----------------------------------------------------------------

  private signal(member: LocalMember, msg: SignalMessage): void {
    requireGrant(member, 'signal');
    const frame = encode.signal(member.room, member.id, msg.data);
    const logged = this.router.send(member.room, msg.to, frame);
    if (logged) this.ackWhenLogged(member, msg.id, logged);
    else if (msg.id !== undefined) member.session.link.send(encode.ack(msg.id));
  }

  private broadcast(member: LocalMember, msg: BroadcastMessage): void {
    requireGrant(member, 'broadcast');
    const frame = encode.broadcast(member.room, member.id, msg.data);
    this.local.broadcastFrom(member, frame);
    this.ackWhenLogged(member, msg.id, this.channel.publish(member.room, { kind: Kind.Broadcast, from: member.id, frame }));
  }

  /** The ack is a promise of delivery: it goes out once the room's log holds the message. */
  private ackWhenLogged(member: LocalMember, requestId: RequestId | undefined, logged: Promise<Position>): void {
    logged.then(
      () => {
        if (requestId !== undefined && !member.session.isClosed) member.session.link.send(encode.ack(requestId));
      },
      (err) => {
        this.metrics.dropped.labels('bus-unavailable').inc();
        this.warnings.warn({ err, room: member.room, participant: member.id }, 'bus publish failed');
        if (requestId !== undefined && !member.session.isClosed) {
          const error = new ProtocolError('unavailable', 'the message bus is unreachable; retry later');
          this.replyError(member.session, requestId, error);
        }
      },
    );
  }

  private async writeState(member: LocalMember, msg: StateMessage): Promise<void> {
    const { session, room } = member;
    try {
      const written = this.store.writeState({ room, participantId: member.id }, msg.version, msg.data, (version) =>
        this.channel.publishAndAwaitEcho(room, {
          kind: Kind.State,
          writer: member.id,
          version,
          frame: encode.state(room, version, msg.data, member.id),
        }),
      );
      const result = await dependency(written, this.warnings);
      if (!result.ok) {
        const { current } = result;
        throw new ProtocolError('version-conflict', `room state is at version ${current.version}`, { state: current });
      }
      // The sender's next broadcast goes straight to local peers: they must have the state first.
      await this.channel.echo(room, { kind: Kind.State, writer: member.id, version: result.version });
      member.version = Math.max(member.version, result.version);
      if (msg.id !== undefined && !session.isClosed) session.link.send(encode.ack(msg.id, result.version));
    } catch (err) {
      if (!session.isClosed) this.replyError(session, msg.id, err);
    }
  }

  /** Rooms with members on this node. */
  get roomCount(): number {
    return this.local.roomCount;
  }
}

function requireGrant(member: LocalMember, action: Grant): void {
  if (member.grants && !member.grants.has(action)) {
    throw new ProtocolError('forbidden', `${action} is not granted to this participant`);
  }
}
