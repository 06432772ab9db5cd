// The rooms layer's side of the bus: envelopes out to a room's channel (timed), envelopes in
// (decoded, handed to one handler), and waiting for this node's own events to come back. It knows
// the envelope format, not what a kind means to the room.
import type { Logger } from 'pino';
import type { GapHandler, LogEntry, Position, RoomBus } from '../bus/bus.js';
import type { Metrics } from '../metrics.js';
import { Kind, decodeEnvelope, encodeEnvelope, type Envelope } from './envelope.js';

export interface RoomChannelOptions {
  nodeId: string;
  bus: RoomBus;
  metrics: Metrics;
  log: Logger;
}

/** Receives each well-formed envelope; `isOwn` says this node published it. */
export type EnvelopeHandler = (room: string, envelope: Envelope, isOwn: boolean, position: Position) => void;

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

  /** Resolves with the envelope's position in the room's log. */
  publish(room: string, kind: Kind, target: string, num: number, frame: string): Promise<Position> {
    const started = performance.now();
    return this.opts.bus.publish(room, encodeEnvelope(this.opts.nodeId, kind, target, num, frame)).then((position) => {
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
  publishAndAwaitEcho(room: string, kind: Kind, target: string, num: number, frame: string): Promise<Position> {
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

  /** Waits (bounded) until this node's own event has come back from the bus and been delivered. */
  async echo(kind: Kind, room: string, target: string, num: number): Promise<void> {
    const key = `${kind}|${room}|${target}|${num}`;
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
    this.opts.bus.onMessage((room, payload, position) => {
      const envelope = decodeEnvelope(payload);
      if (!envelope) {
        this.opts.log.warn({ room }, 'ignoring a malformed bus message');
        return;
      }
      const { origin, kind, target, num } = envelope;
      handler(room, envelope, origin === this.opts.nodeId, position);
      if (kind === Kind.PeerJoined || kind === Kind.PeerLeft || kind === Kind.State) {
        this.echoes.get(`${kind}|${room}|${target}|${num}`)?.();
      }
    });
  }
}

/** How long an operation waits for its own event to come back from the bus before going on. */
const ECHO_WAIT_MS = 2000;
