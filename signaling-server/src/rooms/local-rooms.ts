// The rooms this node has members in: each room's view, the local members by participant id, and
// delivery to them of broadcasts and of the membership and state events that arrive on the bus.
// It changes nothing in the database; deciding who joins or leaves is the job of RoomService and
// Admission, and where signals go is the SignalRouter's.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { KICKED_CLOSE_CODE, encode, type Peer, type RoomState } from '../protocol/messages.js';
import { Kind, type ReceivedEnvelope } from './envelope.js';
import type { RoomChannel } from './room-channel.js';
import { RoomView } from './room-view.js';
import { topicOf, type HeldEvent, type LocalFanout, type LocalMember } from './session.js';
import type { MemberDirectory } from './signal-router.js';

export interface LocalRoomsOptions {
  channel: RoomChannel;
  fanout: LocalFanout;
  metrics: Metrics;
  log: Logger;
  /**
   * A member was let go of here, for whatever reason (leave, grace, kick, a resume elsewhere):
   * what is kept per member (its re-check timer) goes with it.
   */
  onForget?: (member: LocalMember) => void;
}

export class LocalRooms implements MemberDirectory {
  private readonly views = new Map<string, RoomView>();
  private readonly localById = new Map<string, LocalMember>();
  /** Rooms kept subscribed for the gaps of participants that went away from this node. */
  private readonly kept = new Map<string, number>();
  private readonly channel: RoomChannel;
  private readonly fanout: LocalFanout;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly onForget: (member: LocalMember) => void;
  private readonly deliveredBroadcast;

  constructor(opts: LocalRoomsOptions) {
    ({ channel: this.channel, fanout: this.fanout, metrics: this.metrics, log: this.log } = opts);
    this.onForget = opts.onForget ?? (() => {});
    this.deliveredBroadcast = this.metrics.deliveries.labels('broadcast');
  }

  get participantCount(): number {
    return this.localById.size;
  }

  /** Rooms with members on this node. */
  get roomCount(): number {
    return this.views.size;
  }

  /** The local member holding a participant, once its join has committed here. */
  find(participantId: string): LocalMember | undefined {
    return this.localById.get(participantId);
  }

  /** Whether the room's view lists the participant, on any node. */
  isInRoom(room: string, participantId: string): boolean {
    return this.views.get(room)?.has(participantId) ?? false;
  }

  // ---- membership on this node -----------------------------------------------------------------

  /** Adds a member whose join starts now; the room's view (and subscription) is made if needed. */
  addJoining(member: LocalMember): RoomView {
    const view = this.viewOf(member.room);
    view.locals.add(member);
    return view;
  }

  /** The member's join committed: it is found by its participant id from now on. */
  addJoined(member: LocalMember): void {
    this.localById.set(member.id, member);
    this.metrics.participants.set(this.localById.size);
  }

  /** Right after `joined`: the events held during the join, through the member's filter. */
  deliverHolds(member: LocalMember): void {
    for (const event of member.held) this.deliverHeld(member, event);
    member.held = [];
  }

  /** Removes a member from this node only; the database is someone else's business. */
  drop(member: LocalMember): void {
    member.status = 'gone';
    if (!member.session.isClosed) member.session.link.unsubscribe(topicOf(member.room));
    this.forget(member);
  }

  /** Like drop() without touching the socket: also for a join that failed before it subscribed. */
  forget(member: LocalMember): void {
    this.onForget(member);
    member.session.memberships.delete(member.room);
    if (this.localById.get(member.id) === member) this.localById.delete(member.id);
    this.metrics.participants.set(this.localById.size);
    const view = this.views.get(member.room);
    if (!view) return;
    view.locals.delete(member);
    this.releaseViewIfUnused(member.room);
  }

  keepRoom(room: string): void {
    this.kept.set(room, (this.kept.get(room) ?? 0) + 1);
  }

  releaseRoom(room: string): void {
    const count = (this.kept.get(room) ?? 1) - 1;
    if (count > 0) this.kept.set(room, count);
    else this.kept.delete(room);
    this.releaseViewIfUnused(room);
  }

  /** Ends the room's subscription once no local member and no kept gap needs it. */
  releaseViewIfUnused(room: string): void {
    const view = this.views.get(room);
    if (!view || view.locals.size > 0 || this.kept.has(room)) return;
    this.views.delete(room);
    this.metrics.rooms.set(this.views.size);
    this.channel.unsubscribe(room).catch((err) => {
      // The subscription lingers until the next reconnect; messages for the room are ignored.
      this.metrics.backgroundErrors.labels('unsubscribe').inc();
      this.log.warn({ err, room }, 'unsubscribe failed');
    });
  }

  private viewOf(room: string): RoomView {
    let view = this.views.get(room);
    if (!view) {
      view = new RoomView(() => this.channel.subscribe(room));
      this.views.set(room, view);
      this.metrics.rooms.set(this.views.size);
    }
    return view;
  }

  // ---- what this node's members send -----------------------------------------------------------

  /** Sends a broadcast to the sender's local peers through the sender's socket. */
  broadcastFrom(member: LocalMember, frame: string): void {
    const topic = topicOf(member.room);
    member.session.link.publish(topic, frame);
    this.deliveredBroadcast.inc(Math.max(0, this.fanout.subscriberCount(topic) - 1));
  }

  // ---- what arrives on the bus -----------------------------------------------------------------

  receive(room: string, envelope: ReceivedEnvelope, isOwn: boolean): void {
    switch (envelope.kind) {
      case Kind.Broadcast: {
        // This node delivered its own broadcasts when they were sent.
        if (isOwn) return;
        const topic = topicOf(room);
        this.fanout.publish(topic, envelope.frame);
        this.deliveredBroadcast.inc(this.fanout.subscriberCount(topic));
        return;
      }
      case Kind.PeerJoined:
      case Kind.PeerLeft:
        // Membership and state events come back to their origin too: every node then sees them in
        // the one order the bus gives, the order in which the database serialised them.
        return this.onMembershipEvent(
          room,
          envelope.kind === Kind.PeerJoined,
          envelope.participant,
          envelope.seq,
          envelope.frame,
          isOwn,
        );
      case Kind.State:
        return this.deliverToMembers(room, {
          kind: 'state',
          num: envelope.version,
          target: envelope.writer,
          frame: envelope.frame,
        });
      case Kind.Kicked:
        return this.onKicked(room, envelope.participant, envelope.frame);
      case Kind.Server:
        // To the whole room; one addressed to a participant is routed like a signal.
        this.fanout.publish(topicOf(room), envelope.frame);
        this.metrics.deliveries.labels('server').inc(this.fanout.subscriberCount(topicOf(room)));
        return;
      case Kind.NodeCommand:
      case Kind.Topic:
        // Not room events: NodeCommands and TopicRelay read their own channels.
        return;
      default:
        this.log.warn({ room, kind: envelope.kind }, 'ignoring a bus message of a kind rooms do not handle');
    }
  }

  /**
   * An operator removed a participant held here: it is told, then let go; a connection left in no
   * room is closed with KICKED_CLOSE_CODE. Its peers learn from the `peer-left` that follows.
   */
  private onKicked(room: string, target: string, frame: string): void {
    const member = this.localById.get(target);
    if (!member || member.room !== room || member.status !== 'joined') return;
    const { session } = member;
    session.link.send(frame);
    this.drop(member);
    this.log.info({ room, participant: target }, 'participant removed by an operator');
    if (session.memberships.size === 0) session.link.close(KICKED_CLOSE_CODE, 'kicked');
  }

  private onMembershipEvent(
    room: string,
    joined: boolean,
    participantId: string,
    seq: number,
    frame: string,
    isOwn: boolean,
  ): void {
    const view = this.views.get(room);
    if (!view) return;
    const event: HeldEvent = { kind: 'membership', num: seq, target: participantId, frame };
    // A departure this view applied before is news to no joined member (they were told); a
    // joining member may still need it, against its own snapshot.
    this.deliverToMembers(room, event, view.applyEvent(seq, joined, participantId));
    if (!joined && !isOwn) {
      // Another node removed a participant this node still holds: it judged this node dead while
      // it was cut off. Its connection is closed with 1012 so the client re-joins (here or
      // elsewhere) instead of talking into a membership that no longer exists.
      const stale = this.localById.get(participantId);
      if (stale && stale.room === room) {
        this.log.warn(
          { room, participant: participantId },
          'a participant held here was removed by another node: closing its connection',
        );
        this.drop(stale);
        stale.session.link.close(1012, 'removed by the cluster');
      }
    }
  }

  /**
   * The bus lost some of the room's events for this node: brings the view and every local member
   * up to the database's snapshot, with the peer-joined, peer-left and state events they missed.
   */
  heal(room: string, seq: number, peers: Peer[], state: RoomState): void {
    const view = this.views.get(room);
    if (!view) return;
    const before = view.ids();
    view.applySnapshot(
      seq,
      peers.map((p) => p.id),
    );
    const after = new Set(peers.map((p) => p.id));
    const frames: { about: string; frame: string }[] = [];
    for (const peer of peers) if (!before.has(peer.id)) frames.push({ about: peer.id, frame: encode.peerJoined(room, peer) });
    for (const id of before) if (!after.has(id)) frames.push({ about: id, frame: encode.peerLeft(room, id, 'disconnected') });
    // The writer is not known here: `from` is empty on a healed state event (docs/protocol.md).
    const stateFrame = state.version > 0 ? encode.state(room, state.version, state.data ?? {}, '') : null;
    for (const member of view.locals) {
      if (member.status !== 'joined') continue;
      if (member.seq < seq) {
        for (const f of frames) if (f.about !== member.id) member.session.link.send(f.frame);
        member.seq = seq;
      }
      if (stateFrame && member.version < state.version) {
        member.session.link.send(stateFrame);
        member.version = state.version;
      }
    }
  }

  /** With `isNews` false, joined members only count the event as seen (a later heal relies on it). */
  private deliverToMembers(room: string, event: HeldEvent, isNews = true): void {
    const view = this.views.get(room);
    if (!view) return;
    for (const member of view.locals) {
      if (member.status === 'joining') member.held.push(event);
      else if (member.status !== 'joined') continue;
      else if (isNews) this.deliverHeld(member, event);
      else if (event.kind === 'membership') member.seq = Math.max(member.seq, event.num);
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
}
