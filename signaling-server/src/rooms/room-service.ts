// The domain of one node: join, leave, signal, broadcast, state and resume, as protocol v1 says.
// It holds only what it can rebuild (local members, room views); the database holds membership and
// state, the bus carries everything between nodes. Signals and broadcasts touch neither the
// database nor any await on their way out.
import type { Logger } from 'pino';
import { roomAllowed, type Grant, type TokenClaims, type TokenVerifier } from '../auth/token-verifier.js';
import type { RoomBus } from '../bus/bus.js';
import type { ParticipantMailbox } from '../bus/mailbox.js';
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
import type { Departure, HeldMembership, RoomSnapshot, RoomStore } from '../store/store.js';
import { Kind, decodeEnvelope, encodeEnvelope } from './envelope.js';
import { GapSignals } from './gap-signals.js';
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
  mailbox: ParticipantMailbox;
  /** Signals kept per participant between two connections. */
  maxGapSignals: number;
  /** How long a resumed participant waits for its previous node's handover. */
  handoverWaitMs: number;
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
  private readonly gaps: GapSignals;
  /** Signals for participants whose join is in flight here, delivered right after `joined`. */
  private readonly joining = new Map<string, string[]>();
  /**
   * Signals this node published per recipient and has not yet seen come back from the bus. While
   * any are in flight, a recipient that became local meanwhile still gets signals through the bus,
   * so the direct path cannot overtake them.
   */
  private readonly signalsInFlight = new Map<string, number>();
  /** Resolvers waiting for this node's own membership and state events to come back from the bus. */
  private readonly echoes = new Map<string, () => void>();

  constructor(private readonly opts: RoomServiceOptions) {
    ({ nodeId: this.nodeId, store: this.store, bus: this.bus, fanout: this.fanout, metrics: this.metrics, log: this.log } = opts);
    this.deliveredSignal = this.metrics.deliveries.labels('signal');
    this.deliveredBroadcast = this.metrics.deliveries.labels('broadcast');
    this.gaps = new GapSignals({
      mailbox: opts.mailbox,
      graceMs: opts.resumeGraceMs,
      maxPerParticipant: opts.maxGapSignals,
      handoverWaitMs: opts.handoverWaitMs,
      metrics: opts.metrics,
      log: opts.log,
      publishHandover: (room, participantId) => this.publish(room, Kind.Handover, participantId, 0, ''),
      deliver: (participantId, frames) => this.deliverSignals(participantId, frames),
      onRoomReleased: (room) => this.releaseViewIfUnused(room),
    });
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

  /** Participants whose gaps this node took since `since` (performance.now()) and still keeps. */
  gapsSince(since: number): number {
    return this.gaps.ownedSince(since);
  }

  /**
   * Resolves once every grace period started on this node so far is recorded in the database and
   * every handover it owes is published: until then the node must keep its connections.
   */
  async settled(): Promise<void> {
    await Promise.all([...this.pendingGraces, this.gaps.settled()]);
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
      const { snapshot, secret, isResumed } = await this.admit(member, msg, meta, claims);
      member.seq = snapshot.seq;
      member.version = snapshot.state.version;
      view.applySnapshot(snapshot.seq, [snapshot.self.id, ...snapshot.peers.map((p) => p.id)]);
      member.status = 'joined';
      this.localById.set(member.id, member);
      this.metrics.participants.set(this.localById.size);
      if (session.isClosed) {
        // The connection went away while the join was in flight: the participant starts its grace.
        this.gaps.markJoined(member.id);
        void this.startGrace([this.enterGrace(member)], 'disconnected');
        return;
      }
      session.link.subscribe(topicOf(room));
      session.link.send(
        encode.joined(msg.id, room, snapshot.self, snapshot.peers, snapshot.state, formatResumeToken(member.id, secret), isResumed),
      );
      for (const event of member.held) this.deliverHeld(member, event);
      member.held = [];
      const early = this.joining.get(member.id);
      this.joining.delete(member.id);
      if (early) this.deliverSignals(member.id, early);
      this.gaps.markJoined(member.id);
      this.metrics.joinSeconds.observe((performance.now() - started) / 1000);
      this.log.info({ room, participant: member.id, resumed: isResumed }, 'joined');
    } catch (err) {
      member.status = 'gone';
      member.held = [];
      this.joining.delete(member.id);
      this.gaps.cancelClaim(member.id);
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

  /**
   * Resumes the participant named by the join's resume token, or adds a new one. Sets the member's
   * id and resume hash before anything can be addressed to it.
   */
  private async admit(member: LocalMember, msg: JoinMessage, meta: Record<string, unknown>, claims: TokenClaims | undefined) {
    const next = newResumeSecret();
    member.resumeHash = next.hash;
    const presented = msg.resume ? parseResumeToken(msg.resume) : null;
    if (presented) {
      const resumed = await this.dependency(
        this.store.resume({
          room: msg.room,
          participantId: presented.participantId,
          identity: claims?.sub ?? null,
          resumeHash: hashResumeSecret(presented.secret),
          nextResumeHash: next.hash,
          nodeId: this.nodeId,
        }),
      );
      if (resumed) {
        member.id = resumed.self.id;
        // A connection of this node that still holds the participant lets go of it silently; this
        // node then keeps its gap like any previous node would.
        const stale = this.localById.get(member.id);
        if (stale && stale !== member) this.enterGrace(stale);
        // Signals before this marker are the previous node's to keep; those after it are ours.
        this.gaps.beginClaim(msg.room, member.id);
        await this.publish(msg.room, Kind.Claim, member.id, 0, '').catch((err) =>
          this.log.warn({ err: String(err), room: msg.room, participant: member.id }, 'could not publish a resume claim'),
        );
        return { snapshot: resumed as RoomSnapshot, secret: next.secret, isResumed: true };
      }
    }
    const participantId = newParticipantId();
    member.id = participantId;
    // Peers may signal the newcomer as soon as they see peer-joined, before `joined` goes out.
    this.joining.set(participantId, []);
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
        (s) => this.publishAndAwaitEcho(msg.room, Kind.PeerJoined, participantId, s.seq, encode.peerJoined(msg.room, s.self)),
      ),
    );
    // Local peers have seen peer-joined once its echo is back: only then may the newcomer speak.
    await this.echo(Kind.PeerJoined, msg.room, participantId, snapshot.seq);
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

  /** Drops a member from this node and keeps its gap here until it resumes or expires. */
  private enterGrace(member: LocalMember): HeldMembership {
    this.gaps.own(member.room, member.id);
    this.dropLocal(member);
    return { room: member.room, participantId: member.id, resumeHash: member.resumeHash };
  }

  /** Records grace periods, retrying until the database takes them. */
  private startGrace(members: HeldMembership[], reason: 'disconnected' | 'timeout'): Promise<void> {
    const done = new Promise<void>((resolve) => {
      const attempt = () =>
        this.store.disconnect(members, this.nodeId, this.opts.resumeGraceMs, reason).then(resolve, (err) => {
          // Until this lands the rows say "connected" on a live node: nobody would ever reap them.
          this.log.warn({ err: String(err), participants: members.length }, 'could not record disconnects; retrying');
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
    const target = this.localById.get(msg.to);
    // A participant that is resuming here takes its signals through the bus, in the claim's order.
    if (
      target &&
      target.room === member.room &&
      target.status === 'joined' &&
      !this.gaps.isClaiming(msg.to) &&
      !this.signalsInFlight.has(msg.to)
    ) {
      target.session.link.send(frame);
      this.deliveredSignal.inc();
      if (msg.id !== undefined) member.session.link.send(encode.ack(msg.id));
      return;
    }
    if (!this.views.get(member.room)?.has(msg.to)) {
      throw new ProtocolError('peer-not-found', `no participant ${msg.to.slice(0, 64)} in room ${member.room}`);
    }
    this.signalsInFlight.set(msg.to, (this.signalsInFlight.get(msg.to) ?? 0) + 1);
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
        if (kind === Kind.Signal) this.signalLanded(target);
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
          this.publishAndAwaitEcho(room, Kind.State, member.id, version, encode.state(room, version, msg.data, member.id)),
        ),
      );
      if (!result.ok) {
        throw new ProtocolError('version-conflict', `room state is at version ${result.current.version}`, { state: result.current });
      }
      // The sender's next broadcast goes straight to local peers: they must have the state first.
      await this.echo(Kind.State, room, member.id, result.version);
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

  /**
   * Publishes an event this node must see come back before it goes on (see echo()). The waiter is
   * registered first: the echo may arrive before the publish resolves.
   */
  private publishAndAwaitEcho(room: string, kind: Kind, target: string, num: number, frame: string): Promise<void> {
    const key = `${kind}|${room}|${target}|${num}`;
    const echoed = new Promise<void>((resolve) => this.echoes.set(key, resolve));
    this.pendingEchoes.set(key, echoed);
    // An operation that fails after publishing never asks for its echo: forget it in any case.
    setTimeout(() => {
      this.echoes.delete(key);
      this.pendingEchoes.delete(key);
    }, ECHO_WAIT_MS * 5).unref();
    return this.publish(room, kind, target, num, frame).catch((err) => {
      this.echoes.delete(key);
      this.pendingEchoes.delete(key);
      throw err;
    });
  }
  private readonly pendingEchoes = new Map<string, Promise<void>>();

  /** Waits (bounded) until this node's own event has come back from the bus and been delivered. */
  private async echo(kind: Kind, room: string, target: string, num: number): Promise<void> {
    const key = `${kind}|${room}|${target}|${num}`;
    const echoed = this.pendingEchoes.get(key);
    if (!echoed) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([echoed, new Promise<void>((resolve) => (timer = setTimeout(resolve, ECHO_WAIT_MS)))]);
    clearTimeout(timer);
    this.echoes.delete(key);
    this.pendingEchoes.delete(key);
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
      case Kind.Signal:
        // Published only when the target was not live here at send time, so never a duplicate of
        // the local fast path, even when this node sent it.
        if (isOwn) this.signalLanded(target);
        return this.onSignal(room, target, frame);
      case Kind.PeerJoined:
      case Kind.PeerLeft:
        // Membership and state events come back to their origin too: every node then sees them in
        // the one order the bus gives, the order in which the database serialised them.
        this.onMembershipEvent(room, kind === Kind.PeerJoined, target, num, frame, isOwn);
        return this.echoes.get(`${kind}|${room}|${target}|${num}`)?.();
      case Kind.State:
        this.deliverToMembers(room, { kind: 'state', num, target, frame });
        return this.echoes.get(`${kind}|${room}|${target}|${num}`)?.();
      case Kind.Claim: {
        this.gaps.onClaim(room, target, isOwn);
        const member = this.localById.get(target);
        if (!isOwn && member && member.room === room) {
          // Resumed on another node while this connection still held it (a half-dead network).
          this.log.info({ room, participant: target }, 'participant resumed on another node');
          this.dropLocal(member);
          void this.publish(room, Kind.Handover, target, 0, '').catch(() => {});
        }
        return;
      }
      case Kind.Handover:
        return this.gaps.onHandover(target);
      default:
        this.log.warn({ room, kind }, 'ignoring a bus message of unknown kind');
    }
  }

  private signalLanded(target: string): void {
    const count = this.signalsInFlight.get(target);
    if (count === undefined) return;
    if (count <= 1) this.signalsInFlight.delete(target);
    else this.signalsInFlight.set(target, count - 1);
  }

  private onSignal(room: string, target: string, frame: string): void {
    if (this.gaps.holdForClaim(target, frame)) return;
    const held = this.joining.get(target);
    if (held) {
      held.push(frame);
      return;
    }
    const member = this.localById.get(target);
    if (member && member.room === room) {
      member.session.link.send(frame);
      this.deliveredSignal.inc();
    } else if (this.gaps.owns(target)) {
      this.gaps.store(target, frame);
    }
  }

  /** Sends signal frames to a local participant, in order (gap signals, early signals). */
  private deliverSignals(participantId: string, frames: string[]): void {
    const member = this.localById.get(participantId);
    if (!member || member.session.isClosed) {
      if (frames.length > 0) this.metrics.dropped.labels('recipient-gone').inc(frames.length);
      return;
    }
    for (const frame of frames) member.session.link.send(frame);
    this.deliveredSignal.inc(frames.length);
  }

  private onMembershipEvent(room: string, joined: boolean, participantId: string, seq: number, frame: string, isOwn: boolean): void {
    if (!joined) this.gaps.release(participantId, true);
    const view = this.views.get(room);
    if (!view) return;
    view.applyEvent(seq, joined, participantId);
    this.deliverToMembers(room, { kind: 'membership', num: seq, target: participantId, frame });
    if (!joined && !isOwn) {
      // Another node removed a participant this node still holds: it judged this node dead while
      // it was cut off. The client is told by being let go; it can join again.
      const stale = this.localById.get(participantId);
      if (stale && stale.room === room) {
        this.log.warn({ room, participant: participantId }, 'a participant held here was removed by another node');
        this.dropLocal(stale);
      }
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
    this.releaseViewIfUnused(member.room);
  }

  /** Ends the room's subscription once no local member and no kept gap needs it. */
  private releaseViewIfUnused(room: string): void {
    const view = this.views.get(room);
    if (!view || view.locals.size > 0 || this.gaps.ownsAnyIn(room)) return;
    this.views.delete(room);
    this.metrics.rooms.set(this.views.size);
    this.bus.unsubscribe(room).catch((err) => this.log.warn({ err: String(err), room }, 'unsubscribe failed'));
  }

  /** Rooms with members on this node. */
  get roomCount(): number {
    return this.views.size;
  }
}

/** How long an operation waits for its own event to come back from the bus before going on. */
const ECHO_WAIT_MS = 2000;

function requireGrant(member: LocalMember, action: Grant): void {
  if (member.grants && !member.grants.has(action)) {
    throw new ProtocolError('forbidden', `the token does not grant ${action}`);
  }
}
