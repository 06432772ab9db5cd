// The rooms this node has members in: each room's view, the local members by participant id, and
// delivery to them of what this node's members send and what arrives on the bus. It changes nothing
// in the database; deciding who joins or leaves is the job of RoomService and Admission.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { HeldMembership } from '../store/store.js';
import { Kind, type Envelope } from './envelope.js';
import type { GapSignals } from './gap-signals.js';
import type { RoomChannel } from './room-channel.js';
import { RoomView } from './room-view.js';
import { topicOf, type HeldEvent, type LocalFanout, type LocalMember } from './session.js';

/** After this long without news, a signal published to the bus is taken as lost, not in flight. */
const IN_FLIGHT_STALE_MS = 5000;

export interface LocalRoomsOptions {
  channel: RoomChannel;
  gaps: GapSignals;
  fanout: LocalFanout;
  metrics: Metrics;
  log: Logger;
}

export class LocalRooms {
  private readonly views = new Map<string, RoomView>();
  private readonly localById = new Map<string, LocalMember>();
  /** Signals for participants whose join is in flight here, delivered right after `joined`. */
  private readonly joining = new Map<string, string[]>();
  /**
   * Signals this node published per recipient and has not yet seen come back from the bus. While
   * any are in flight, a recipient that became local meanwhile still gets signals through the bus,
   * so the direct path cannot overtake them.
   */
  private readonly signalsInFlight = new Map<string, { count: number; at: number }>();
  private readonly channel: RoomChannel;
  private readonly gaps: GapSignals;
  private readonly fanout: LocalFanout;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly deliveredSignal;
  private readonly deliveredBroadcast;

  constructor(opts: LocalRoomsOptions) {
    ({ channel: this.channel, gaps: this.gaps, fanout: this.fanout, metrics: this.metrics, log: this.log } = opts);
    this.deliveredSignal = this.metrics.deliveries.labels('signal');
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

  /** Holds the signals that arrive for a participant until deliverHolds() or dropHolds(). */
  holdSignals(participantId: string): void {
    this.joining.set(participantId, []);
  }

  /** The member's join committed: it is found by its participant id from now on. */
  addJoined(member: LocalMember): void {
    this.localById.set(member.id, member);
    this.metrics.participants.set(this.localById.size);
  }

  /** Right after `joined`: the events held during the join (filtered), then the signals held. */
  deliverHolds(member: LocalMember): void {
    for (const event of member.held) this.deliverHeld(member, event);
    member.held = [];
    const early = this.joining.get(member.id);
    this.joining.delete(member.id);
    if (early) this.deliverSignals(member.id, early);
  }

  /** The member's join failed: what was held for it goes. */
  dropHolds(member: LocalMember): void {
    member.held = [];
    this.joining.delete(member.id);
  }

  /** Removes a member from this node only; the database is someone else's business. */
  drop(member: LocalMember): void {
    member.status = 'gone';
    if (!member.session.isClosed) member.session.link.unsubscribe(topicOf(member.room));
    this.forget(member);
  }

  /** Drops a member from this node and keeps its gap here until it resumes or expires. */
  enterGrace(member: LocalMember): HeldMembership {
    this.gaps.own(member.room, member.id);
    this.drop(member);
    return { room: member.room, participantId: member.id, resumeHash: member.resumeHash };
  }

  /** Like drop() without touching the socket: also for a join that failed before it subscribed. */
  forget(member: LocalMember): void {
    member.session.memberships.delete(member.room);
    if (this.localById.get(member.id) === member) this.localById.delete(member.id);
    this.metrics.participants.set(this.localById.size);
    const view = this.views.get(member.room);
    if (!view) return;
    view.locals.delete(member);
    this.releaseViewIfUnused(member.room);
  }

  /** Ends the room's subscription once no local member and no kept gap needs it. */
  releaseViewIfUnused(room: string): void {
    const view = this.views.get(room);
    if (!view || view.locals.size > 0 || this.gaps.ownsAnyIn(room)) return;
    this.views.delete(room);
    this.metrics.rooms.set(this.views.size);
    this.channel.unsubscribe(room).catch((err) => this.log.warn({ err: String(err), room }, 'unsubscribe failed'));
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

  /** Sends a signal straight to a recipient held here, when that cannot break its order. */
  sendSignalDirectly(room: string, to: string, frame: string): boolean {
    const target = this.localById.get(to);
    // A participant that is resuming here takes its signals through the bus, in the claim's order.
    if (
      !target ||
      target.room !== room ||
      target.status !== 'joined' ||
      this.gaps.isClaiming(to) ||
      this.hasSignalsInFlight(to)
    ) {
      return false;
    }
    target.session.link.send(frame);
    this.deliveredSignal.inc();
    return true;
  }

  /** A signal for `to` is about to be published: later ones follow it through the bus. */
  signalPublished(to: string): void {
    const inFlight = this.signalsInFlight.get(to);
    if (inFlight) {
      inFlight.count++;
      inFlight.at = performance.now();
    } else {
      this.signalsInFlight.set(to, { count: 1, at: performance.now() });
    }
  }

  /** A published signal came back from the bus, or its publish failed. */
  signalLanded(target: string): void {
    const inFlight = this.signalsInFlight.get(target);
    if (!inFlight) return;
    if (inFlight.count <= 1) this.signalsInFlight.delete(target);
    else inFlight.count--;
  }

  /**
   * Whether signals to `to` published by this node may still be on the bus. One that never comes
   * back (lost with a subscriber connection) stops counting after a while instead of for ever.
   */
  private hasSignalsInFlight(to: string): boolean {
    const inFlight = this.signalsInFlight.get(to);
    if (!inFlight) return false;
    if (performance.now() - inFlight.at < IN_FLIGHT_STALE_MS) return true;
    this.signalsInFlight.delete(to);
    return false;
  }

  /** Sends a broadcast to the sender's local peers through the sender's socket. */
  broadcastFrom(member: LocalMember, frame: string): void {
    const topic = topicOf(member.room);
    member.session.link.publish(topic, frame);
    this.deliveredBroadcast.inc(Math.max(0, this.fanout.subscriberCount(topic) - 1));
  }

  // ---- what arrives on the bus -----------------------------------------------------------------

  receive(room: string, envelope: Envelope, isOwn: boolean): void {
    const { kind, target, num, frame } = envelope;
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
        return this.onMembershipEvent(room, kind === Kind.PeerJoined, target, num, frame, isOwn);
      case Kind.State:
        return this.deliverToMembers(room, { kind: 'state', num, target, frame });
      case Kind.Claim: {
        this.gaps.onClaim(room, target, isOwn);
        const member = this.localById.get(target);
        if (!isOwn && member && member.room === room) {
          // Resumed on another node while this connection still held it (a half-dead network).
          this.log.info({ room, participant: target }, 'participant resumed on another node');
          this.drop(member);
          void this.channel.publish(room, Kind.Handover, target, 0, '').catch(() => {});
        }
        return;
      }
      case Kind.Handover:
        return this.gaps.onHandover(target);
      default:
        this.log.warn({ room, kind }, 'ignoring a bus message of unknown kind');
    }
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

  /**
   * Sends signal frames to a local participant, in order (gap signals, early signals). If its
   * connection ended meanwhile, this node keeps them for its next resume, as any gap signal.
   */
  deliverSignals(participantId: string, frames: string[]): void {
    const member = this.localById.get(participantId);
    if (!member || member.session.isClosed) {
      if (this.gaps.owns(participantId)) for (const frame of frames) this.gaps.store(participantId, frame);
      else if (frames.length > 0) this.metrics.dropped.labels('recipient-gone').inc(frames.length);
      return;
    }
    for (const frame of frames) member.session.link.send(frame);
    this.deliveredSignal.inc(frames.length);
  }

  private onMembershipEvent(
    room: string,
    joined: boolean,
    participantId: string,
    seq: number,
    frame: string,
    isOwn: boolean,
  ): void {
    if (!joined) this.gaps.release(participantId, true);
    const view = this.views.get(room);
    if (!view) return;
    view.applyEvent(seq, joined, participantId);
    this.deliverToMembers(room, { kind: 'membership', num: seq, target: participantId, frame });
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
}
