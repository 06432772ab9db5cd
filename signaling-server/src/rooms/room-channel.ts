// The rooms layer's side of the bus: envelopes out to a room's channel (timed), envelopes in
// (decoded, handed to one handler), and waiting for this node's own events to come back. It knows
// the envelope format and how each kind travels (its Route), not what a kind means to the room.
import type { Logger } from 'pino';
import { Route, type GapHandler, type LogEntry, type Position, type RoomBus } from '../bus/bus.js';
import type { Metrics } from '../metrics.js';
import {
  Kind,
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  type MembershipEnvelope,
  type ReceivedEnvelope,
  type StateEnvelope,
} from './envelope.js';

export interface RoomChannelOptions {
  nodeId: string;
  bus: RoomBus;
  metrics: Metrics;
  log: Logger;
}

/** Receives each well-formed envelope; `isOwn` says this node published it. */
export type EnvelopeHandler = (room: string, envelope: ReceivedEnvelope, isOwn: boolean, position: Position) => void;

/** Events whose origin waits for them to come back (membership and state). */
type EchoedEnvelope = MembershipEnvelope | StateEnvelope;

export class RoomChannel {
  /** Resolvers waiting for this node's own membership and state events to come back from the bus. */
  private readonly echoes = new Map<string, () => void>();
  private readonly pendingEchoes = new Map<string, Promise<void>>();

  constructor(private readonly opts: RoomChannelOptions) {}

  subscribe(room: string): Promise<void> {
    return this.opts.bus.subscribe(room);
  }

  unsubscribe(room: string): Promise<void> {
    return this.opts.bus.unsubscribe(room);
  }

  /**
   * Resolves with the envelope's position in the room's log. A signal, or a server message to one
   * participant, goes only to the node that holds the addressee; a peer-joined or a Claim tells the
   * bus that this node holds the participant from now on, a peer-left that no node does.
   */
  publish(room: string, envelope: Envelope): Promise<Position> {
    const started = performance.now();
    const payload = encodeEnvelope(this.opts.nodeId, envelope);
    let published: Promise<Position>;
    switch (envelope.kind) {
      case Kind.Signal:
        published = this.opts.bus.publish(room, payload, Route.To, envelope.to);
        break;
      case Kind.Server:
        published =
          envelope.to === null
            ? this.opts.bus.publish(room, payload)
            : this.opts.bus.publish(room, payload, Route.To, envelope.to);
        break;
      case Kind.PeerJoined:
        published = this.opts.bus.publish(room, payload, Route.Home, envelope.participant, 0);
        break;
      case Kind.Claim:
        published = this.opts.bus.publish(room, payload, Route.Home, envelope.participant, envelope.epoch);
        break;
      case Kind.PeerLeft:
        published = this.opts.bus.publish(room, payload, Route.Gone, envelope.participant);
        break;
      default:
        published = this.opts.bus.publish(room, payload);
    }
    return published.then((position) => {
      this.opts.metrics.busPublishSeconds.observe((performance.now() - started) / 1000);
      return position;
    });
  }

  /** The last position of the room this node has handled. */
  position(room: string): Position {
    return this.opts.bus.position(room);
  }

  read(room: string, after: Position, until: Position): Promise<{ entries: LogEntry[]; isComplete: boolean }> {
    return this.opts.bus.read(room, after, until);
  }

  onGap(handler: GapHandler): void {
    this.opts.bus.onGap(handler);
  }

  /**
   * Publishes an event this node must see come back before it goes on (see echo()). The waiter is
   * registered first: the echo may arrive before the publish resolves.
   */
  publishAndAwaitEcho(room: string, envelope: EchoedEnvelope): Promise<Position> {
    const key = echoKey(room, envelope);
    const echoed = new Promise<void>((resolve) => this.echoes.set(key, resolve));
    this.pendingEchoes.set(key, echoed);
    // An operation that fails after publishing never asks for its echo: forget it in any case.
    setTimeout(() => {
      this.echoes.delete(key);
      this.pendingEchoes.delete(key);
    }, ECHO_WAIT_MS * 5).unref();
    return this.publish(room, envelope).catch((err) => {
      this.echoes.delete(key);
      this.pendingEchoes.delete(key);
      throw err;
    });
  }

  /** Waits (bounded) until this node's own event has come back from the bus and been delivered. */
  async echo(
    room: string,
    envelope: Pick<MembershipEnvelope, 'kind' | 'participant' | 'seq'> | Pick<StateEnvelope, 'kind' | 'writer' | 'version'>,
  ): Promise<void> {
    const key = echoKey(room, envelope);
    const echoed = this.pendingEchoes.get(key);
    if (!echoed) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([echoed, new Promise<void>((resolve) => (timer = setTimeout(resolve, ECHO_WAIT_MS)))]);
    clearTimeout(timer);
    this.echoes.delete(key);
    this.pendingEchoes.delete(key);
  }

  /**
   * Hands every envelope to `handler`. A membership or state event's echo is resolved only after
   * the handler has delivered it, so a waiter knows local members have it.
   */
  onEnvelope(handler: EnvelopeHandler): void {
    const received = new Map(
      Object.entries(KIND_NAMES).map(([kind, name]) => [kind, this.opts.metrics.busReceived.labels(name)]),
    );
    this.opts.bus.onMessage((room, payload, position) => {
      const envelope = decodeEnvelope(payload);
      if (!envelope) {
        this.opts.log.warn({ room }, 'ignoring a malformed bus message');
        return;
      }
      received.get(envelope.kind)?.inc();
      handler(room, envelope, envelope.origin === this.opts.nodeId, position);
      if (envelope.kind === Kind.PeerJoined || envelope.kind === Kind.PeerLeft || envelope.kind === Kind.State) {
        this.echoes.get(echoKey(room, envelope))?.();
      }
    });
  }
}

/** The `kind` label of signaling_bus_received_total. */
const KIND_NAMES: Record<Kind, string> = {
  [Kind.Broadcast]: 'broadcast',
  [Kind.Signal]: 'signal',
  [Kind.PeerJoined]: 'peer-joined',
  [Kind.PeerLeft]: 'peer-left',
  [Kind.State]: 'state',
  [Kind.Claim]: 'claim',
  [Kind.Handover]: 'handover',
  [Kind.Kicked]: 'kicked',
  [Kind.Server]: 'server',
  [Kind.NodeCommand]: 'node-command',
  [Kind.Topic]: 'topic',
};

/** How long an operation waits for its own event to come back from the bus before going on. */
const ECHO_WAIT_MS = 2000;

function echoKey(
  room: string,
  e: Pick<MembershipEnvelope, 'kind' | 'participant' | 'seq'> | Pick<StateEnvelope, 'kind' | 'writer' | 'version'>,
): string {
  return e.kind === Kind.State ? `${e.kind}|${room}|${e.writer}|${e.version}` : `${e.kind}|${room}|${e.participant}|${e.seq}`;
}
