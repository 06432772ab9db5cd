// The domain of one node: join, leave, signal, broadcast, state and resume, as protocol v1 says.
// It holds only what it can rebuild (local members, room views); the database holds membership and
// state, the bus carries everything between nodes. Signals and broadcasts touch neither the
// database nor any await on their way out.
import type { Logger } from 'pino';
import { roomAllowed, type Grant, type TokenClaims, type TokenVerifier } from '../auth/token-verifier.js';
import type { RoomBus } from '../bus/bus.js';
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
import type { Departure, RoomSnapshot, RoomStore } from '../store/store.js';
import { Kind, decodeEnvelope, encodeEnvelope } from './envelope.js';
import {
  formatResumeToken,
  hashResumeSecret,
  newParticipantId,
  newResumeSecret,
  parseResumeToken,
} from './resume-token.js';
import { RoomView } from './room-view.js';
import { LocalMember, Session, topicOf, type ClientLink, type HeldEvent, type LocalFanout } from './session.js';

export interface RoomServiceOptions {
  nodeId: string;
  store: RoomStore;
  bus: RoomBus;
  fanout: LocalFanout;
  metrics: Metrics;
  log: Logger;
  resumeGraceMs: number;
  maxRoomsPerConnection: number;
  maxParticipantsPerRoom: number;
  maxMetaBytes: number;
  /** Null in anonymous mode: no token needed. */
  verifier: TokenVerifier | null;
  /** How long to wait before retrying bookkeeping that failed because the database was away. */
  retryMs?: number;
}

export class RoomService {
  private readonly views = new Map<string, RoomView>();
  private readonly localById = new Map<string, LocalMember>();
  private readonly nodeId: string;
  private readonly store: RoomStore;
  private readonly bus: RoomBus;
  private readonly fanout: LocalFanout;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly deliveredSignal;
  private readonly deliveredBroadcast;

  constructor(private readonly opts: RoomServiceOptions) {
    ({ nodeId: this.nodeId, store: this.store, bus: this.bus, fanout: this.fanout, metrics: this.metrics, log: this.log } = opts);
    this.deliveredSignal = this.metrics.deliveries.labels('signal');
    this.deliveredBroadcast = this.metrics.deliveries.labels('broadcast');
    this.bus.onMessage((room, payload) => this.onBusMessage(room, payload));
  }

  connect(link: ClientLink, claims?: TokenClaims): Session {
    return new Session(link, claims);
  }

  get participantCount(): number {
    return this.localById.size;
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
          if (member.queue) member.queue.push({ msg, requestId });
          else this.run(member, msg, requestId);
        }
      }
    } catch (err) {
      this.replyError(session, requestId, err);
    }
  }

  /** The connection ended without `leave`: its participants enter their grace period. */
  closeSession(session: Session, reason: 'disconnected' | 'timeout'): void {
    session.isClosed = true;
    const gone = [];
    for (const member of session.memberships.values()) {
      if (member.status !== 'joined') continue; // a join in flight finishes the job itself
      gone.push({ room: member.room, participantId: member.id });
      this.dropLocal(member);
    }
    if (gone.length > 0) this.startGrace(gone, reason);
  }

  /**
   * Lets go of every participant on this node at once (shutdown, drain): each enters its grace
   * period, so a client that reconnects elsewhere resumes it and nobody sees it leave.
   */
  async releaseAll(reason: 'disconnected' | 'timeout' = 'disconnected'): Promise<void> {
    const all = [...this.localById.values()];
    for (const member of all) this.dropLocal(member);
    await this.store.disconnect(
      all.map((m) => ({ room: m.room, participantId: m.id })),
      this.nodeId,
      this.opts.resumeGraceMs,
      reason,
    );
  }

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
    const view = this.viewOf(msg.room);
    view.locals.add(member);
    this.waitFor(member, this.completeJoin(member, view, msg, meta));
  }

  private async completeJoin(member: LocalMember, view: RoomView, msg: JoinMessage, meta: Record<string, unknown>) {
    const started = performance.now();
    const { session, room } = member;
    try {
      const claims = await this.authorize(session, msg);
      member.grants = claims?.grants;
      await this.dependency(view.subscription);
      const { snapshot, secret, isResumed } = await this.admit(msg, meta, claims);
      member.id = snapshot.self.id;
      member.seq = snapshot.seq;
      member.version = snapshot.state.version;
      view.applySnapshot(snapshot.seq, [snapshot.self.id, ...snapshot.peers.map((p) => p.id)]);
      if (session.isClosed) {
        // The connection went away while the join was in flight: the participant starts its grace.
        member.status = 'joined';
        this.dropLocal(member);
        this.startGrace([{ room, participantId: member.id }], 'disconnected');
        return;
      }
      member.status = 'joined';
      this.localById.set(member.id, member);
      this.metrics.participants.set(this.localById.size);
      session.link.subscribe(topicOf(room));
      session.link.send(
        encode.joined(msg.id, room, snapshot.self, snapshot.peers, snapshot.state, formatResumeToken(member.id, secret), isResumed),
      );
      for (const event of member.held) this.deliverHeld(member, event);
      member.held = [];
      this.metrics.joinSeconds.observe((performance.now() - started) / 1000);
      this.log.info({ room, participant: member.id, resumed: isResumed }, 'joined');
    } catch (err) {
      member.status = 'gone';
      member.held = [];
      this.forget(member);
      if (!session.isClosed) this.replyError(session, msg.id, err);
    }
  }

  /** The claims this join acts under: its own token, else the connection's; none in anonymous mode. */
  private async authorize(session: Session, msg: JoinMessage): Promise<TokenClaims | undefined> {
    if (!this.opts.verifier) return undefined;
    const claims = msg.token !== undefined ? await this.opts.verifier.verify(msg.token) : session.claims;
    if (!claims) throw new ProtocolError('unauthorized', 'a token is required to join');
    if (claims.exp * 1000 < Date.now()) throw new ProtocolError('unauthorized', 'token expired');
    if (!roomAllowed(claims, msg.room)) throw new ProtocolError('forbidden', `the token does not grant room ${msg.room}`);
    return claims;
  }

  /** Resumes the participant named by the join's resume token, or adds a new one. */
  private async admit(msg: JoinMessage, meta: Record<string, unknown>, claims: TokenClaims | undefined) {
    const next = newResumeSecret();
    const presented = msg.resume ? parseResumeToken(msg.resume) : null;
    if (presented) {
      const resumed = await this.dependency(
        this.store.resume({
          room: msg.room,
          participantId: presented.participantId,
          resumeHash: hashResumeSecret(presented.secret),
          nextResumeHash: next.hash,
          nodeId: this.nodeId,
        }),
      );
      if (resumed) {
        // Whoever held the participant before lets go of it without a peer-left.
        const stale = this.localById.get(resumed.self.id);
        if (stale) this.dropLocal(stale);
        if (resumed.previousNodeId) {
          await this.publish(msg.room, Kind.Evict, resumed.self.id, 0, '').catch((err) =>
            this.log.warn({ err, room: msg.room, participant: resumed.self.id }, 'could not tell the previous node to let go'),
          );
        }
        return { snapshot: resumed as RoomSnapshot, secret: next.secret, isResumed: true };
      }
    }
    const participantId = newParticipantId();
    const snapshot = await this.dependency(
      this.store.join(
        {
          room: msg.room,
          participantId,
          nodeId: this.nodeId,
          // The token's identity and name win over what the client claims.
          name: claims?.name ?? msg.name ?? '',
          meta,
          identity: claims?.sub ?? null,
          resumeHash: next.hash,
          maxParticipants: this.opts.maxParticipantsPerRoom,
        },
        (s) => this.publish(msg.room, Kind.PeerJoined, participantId, s.seq, encode.peerJoined(msg.room, s.self)),
      ),
    );
    return { snapshot, secret: next.secret, isResumed: false };
  }

  private async leave(member: LocalMember, requestId: RequestId | undefined): Promise<void> {
    const { session, room } = member;
    try {
      await this.dependency(
        this.store.leave({ room, participantId: member.id }, this.nodeId, (d) => this.announceDeparture(d)),
      );
      this.dropLocal(member);
      if (!session.isClosed) session.link.send(encode.left(requestId, room));
      this.log.info({ room, participant: member.id }, 'left');
    } catch (err) {
      this.replyError(session, requestId, err);
    }
  }

  /** Publishes a participant's departure to its room; the store calls it before committing. */
  announceDeparture(d: Departure): Promise<void> {
    return this.publish(d.room, Kind.PeerLeft, d.participantId, d.seq, encode.peerLeft(d.room, d.participantId, d.reason));
  }

  private startGrace(members: { room: string; participantId: string }[], reason: 'disconnected' | 'timeout'): void {
    const attempt = () =>
      this.store.disconnect(members, this.nodeId, this.opts.resumeGraceMs, reason).catch((err) => {
        // Until this lands the rows say "connected" on a live node: nobody would ever reap them.
        this.log.warn({ err: String(err), participants: members.length }, 'could not record disconnects; retrying');
        setTimeout(attempt, this.opts.retryMs ?? 1000).unref();
      });
    void attempt();
  }

  // ---- signal, broadcast, state ----------------------------------------------------------------

  private signal(member: LocalMember, msg: SignalMessage): void {
    requireGrant(member, 'signal');
    const frame = encode.signal(member.room, member.id, msg.data);
    const target = this.localById.get(msg.to);
    if (target && target.room === member.room) {
      target.session.link.send(frame);
      this.deliveredSignal.inc();
      if (msg.id !== undefined) member.session.link.send(encode.ack(msg.id));
      return;
    }
    if (!this.views.get(member.room)?.has(msg.to)) {
      throw new ProtocolError('peer-not-found', `no participant ${msg.to.slice(0, 64)} in room ${member.room}`);
    }
    this.publishThenAck(member, msg.id, Kind.Signal, msg.to, frame);
  }

  private broadcast(member: LocalMember, msg: BroadcastMessage): void {
    requireGrant(member, 'broadcast');
    const frame = encode.broadcast(member.room, member.id, msg.data);
    const topic = topicOf(member.room);
    member.session.link.publish(topic, frame);
    this.deliveredBroadcast.inc(Math.max(0, this.fanout.subscriberCount(topic) - 1));
    this.publishThenAck(member, msg.id, Kind.Broadcast, member.id, frame);
  }

  private publishThenAck(member: LocalMember, requestId: RequestId | undefined, kind: Kind, target: string, frame: string) {
    const published = this.publish(member.room, kind, target, 0, frame);
    published.then(
      () => {
        if (requestId !== undefined && !member.session.isClosed) member.session.link.send(encode.ack(requestId));
      },
      (err) => {
        this.metrics.dropped.labels('bus-unavailable').inc();
        this.log.warn({ err: String(err), room: member.room, participant: member.id }, 'bus publish failed');
        if (requestId !== undefined && !member.session.isClosed) {
          this.replyError(member.session, requestId, new ProtocolError('unavailable', 'the message bus is unreachable; retry later'));
        }
      },
    );
  }

  private async writeState(member: LocalMember, msg: StateMessage): Promise<void> {
    const { session, room } = member;
    try {
      const result = await this.dependency(
        this.store.writeState({ room, participantId: member.id }, msg.version, msg.data, (version) =>
          this.publish(room, Kind.State, member.id, version, encode.state(room, version, msg.data, member.id)),
        ),
      );
      if (!result.ok) {
        throw new ProtocolError('version-conflict', `room state is at version ${result.current.version}`, { state: result.current });
      }
      member.version = Math.max(member.version, result.version);
      if (msg.id !== undefined && !session.isClosed) session.link.send(encode.ack(msg.id, result.version));
    } catch (err) {
      if (!session.isClosed) this.replyError(session, msg.id, err);
    }
  }

  // ---- the bus ---------------------------------------------------------------------------------

  private publish(room: string, kind: Kind, target: string, num: number, frame: string): Promise<void> {
    const started = performance.now();
    return this.bus.publish(room, encodeEnvelope(this.nodeId, kind, target, num, frame)).then(() => {
      this.metrics.busPublishSeconds.observe((performance.now() - started) / 1000);
    });
  }

  private onBusMessage(room: string, payload: string): void {
    const envelope = decodeEnvelope(payload);
    if (!envelope) {
      this.log.warn({ room }, 'ignoring a malformed bus message');
      return;
    }
    const { origin, kind, target, num, frame } = envelope;
    const isOwn = origin === this.nodeId;
    switch (kind) {
      case Kind.Broadcast: {
        // This node delivered its own broadcasts when they were sent.
        if (isOwn) return;
        const topic = topicOf(room);
        this.fanout.publish(topic, frame);
        this.deliveredBroadcast.inc(this.fanout.subscriberCount(topic));
        return;
      }
      case Kind.Signal: {
        if (isOwn) return;
        const member = this.localById.get(target);
        if (member && member.room === room) {
          member.session.link.send(frame);
          this.deliveredSignal.inc();
        }
        return;
      }
      case Kind.PeerJoined:
      case Kind.PeerLeft:
        // Membership and state events come back to their origin too: every node then sees them in
        // the one order the bus gives, the order in which the database serialised them.
        return this.onMembershipEvent(room, kind === Kind.PeerJoined, target, num, frame);
      case Kind.State:
        return this.deliverToMembers(room, { kind: 'state', num, target, frame });
      case Kind.Evict: {
        if (isOwn) return;
        const member = this.localById.get(target);
        if (member && member.room === room) {
          this.log.info({ room, participant: target }, 'participant resumed on another node');
          this.dropLocal(member);
        }
        return;
      }
      default:
        this.log.warn({ room, kind }, 'ignoring a bus message of unknown kind');
    }
  }

  private onMembershipEvent(room: string, joined: boolean, participantId: string, seq: number, frame: string): void {
    const view = this.views.get(room);
    if (!view) return;
    view.applyEvent(seq, joined, participantId);
    this.deliverToMembers(room, { kind: 'membership', num: seq, target: participantId, frame });
    if (!joined) {
      // This node may still hold the departed participant (reaped while its node was cut off).
      const stale = this.localById.get(participantId);
      if (stale && stale.room === room) this.dropLocal(stale);
    }
  }

  private deliverToMembers(room: string, event: HeldEvent): void {
    const view = this.views.get(room);
    if (!view) return;
    for (const member of view.locals) {
      if (member.status === 'joining') member.held.push(event);
      else if (member.status === 'joined') this.deliverHeld(member, event);
    }
  }

  /** Sends a membership or state event unless the member has seen it (or is its subject). */
  private deliverHeld(member: LocalMember, event: HeldEvent): void {
    if (event.target === member.id) return;
    if (event.kind === 'membership') {
      if (event.num <= member.seq) return;
      member.seq = event.num;
    } else {
      if (event.num <= member.version) return;
      member.version = event.num;
    }
    member.session.link.send(event.frame);
    this.metrics.deliveries.labels(event.kind).inc();
  }

  /** Awaits a database or bus call; its failure reaches the client as `unavailable`. */
  private async dependency<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      if (isProtocolError(err)) throw err;
      this.log.warn({ err: String(err) }, 'a dependency failed');
      throw new ProtocolError('unavailable', 'the database or the bus is unreachable; retry later');
    }
  }

  // ---- local bookkeeping -----------------------------------------------------------------------

  private viewOf(room: string): RoomView {
    let view = this.views.get(room);
    if (!view) {
      view = new RoomView(() => this.bus.subscribe(room));
      this.views.set(room, view);
      this.metrics.rooms.set(this.views.size);
    }
    return view;
  }

  /** Removes a member from this node only; the database is someone else's business. */
  private dropLocal(member: LocalMember): void {
    member.status = 'gone';
    if (!member.session.isClosed) member.session.link.unsubscribe(topicOf(member.room));
    this.forget(member);
  }

  private forget(member: LocalMember): void {
    member.session.memberships.delete(member.room);
    if (this.localById.get(member.id) === member) this.localById.delete(member.id);
    this.metrics.participants.set(this.localById.size);
    const view = this.views.get(member.room);
    if (!view) return;
    view.locals.delete(member);
    if (view.locals.size === 0) {
      this.views.delete(member.room);
      this.metrics.rooms.set(this.views.size);
      this.bus.unsubscribe(member.room).catch((err) => this.log.warn({ err: String(err), room: member.room }, 'unsubscribe failed'));
    }
  }

  /** Rooms with members on this node. */
  get roomCount(): number {
    return this.views.size;
  }
}

/** Awaits a database or bus call; its failure reaches the client as `unavailable`. */
async function dependency<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (isProtocolError(err)) throw err;
    throw new ProtocolError('unavailable', 'the database or the bus is unreachable; retry later', undefined);
  }
}

function requireGrant(member: LocalMember, action: Grant): void {
  if (member.grants && !member.grants.has(action)) {
    throw new ProtocolError('forbidden', `the token does not grant ${action}`);
  }
}
