// The cross-node message bus: publish a string to a room, receive what any node published to the
// rooms this node subscribed to. Redis (a log per room plus pub/sub) in a cluster, an in-process
// hub otherwise; the same contract for both, stated on the interface below.

/** Where a message stands in its room's log. Opaque; compare with comparePositions(). */
export type Position = string;

/** The position before every message of a room. */
export const START: Position = '0-0';

/** A message as it stands in a room's log. */
export interface LogEntry {
  position: Position;
  payload: string;
}

/**
 * How a message travels. Every message goes into its room's log; the route says which subscribers
 * receive it as it is published. The bus remembers, per room, the node that holds each participant
 * (the node that published its latest Home), so a message for one participant reaches that node
 * only, however many nodes the room spans.
 */
export const enum Route {
  /** To every node subscribed to the room. */
  Room = 0,
  /**
   * For one participant: only to the node that published the participant's latest Home (which may
   * also see it read back); to every node while no node is known to hold it.
   */
  To = 1,
  /**
   * To every node; from now on the publishing node holds the participant, unless a Home with a
   * higher epoch was published already (a late Claim of an older membership changes nothing).
   */
  Home = 2,
  /** To every node; no node holds the participant any more. */
  Gone = 3,
}

/** Receives each message once, in the room's log order, with its position. */
export type BusHandler = (room: string, payload: string, position: Position) => void;

/**
 * A publish that failed after it was sent (no reply in time, the connection lost under it): the
 * message may be in the log, and delivered, all the same. A caller that rolls back what the
 * message announced must settle it (as for a COMMIT whose outcome is unknown).
 */
export class PublishOutcomeUnknown extends Error {
  constructor(cause: unknown) {
    super(`a publish may have gone out: it failed after it was sent (${String(cause)})`, { cause });
  }
}

/** Messages of a room may have been lost for this node: they are not in the log any more. */
export type GapHandler = (room: string) => void;

/**
 * The contract every bus keeps:
 * - Order: each room has one log. A subscriber receives the room's messages that are routed to it
 *   (Route) in log order, each once, including its own (the publisher tells them apart by their
 *   origin). No order holds across rooms.
 * - Routing: a node receives every Room, Home and Gone message of the rooms it subscribed to, and
 *   every To message whose participant it holds (the node that published the latest Home for it);
 *   To messages for participants no node is known to hold reach every node. A To message published
 *   after a Home is routed by that Home: the log's order is the routing order.
 * - Delivery: publish() resolves once the message is in the room's log, with its position. A
 *   subscriber that misses messages routed to it (its connection dropped, its buffer was cut) reads
 *   them back from the log before anything later; a read-back may also hand on messages routed to
 *   other nodes (the handler ignores what is not its own). When the log no longer holds them, it
 *   reports a gap to onGap() and goes on from what it has.
 * - Retention: the log keeps a room's messages for the retention the bus was built with, so a
 *   participant's gap can be read back with read() when it resumes; read() returns every message,
 *   whatever its route.
 * - Failure: publish() rejects fast when the bus is unreachable (the message was not logged),
 *   and with PublishOutcomeUnknown when it failed after it was sent (it may have been logged);
 *   subscribe() rejects after its timeout; isUp() is false while either direction is down or a
 *   subscription is being restored.
 */
export interface RoomBus {
  /** `participant` names the participant of a To, Home or Gone route; `epoch` that of a Home. */
  publish(room: string, payload: string, route?: Route, participant?: string, epoch?: number): Promise<Position>;
  subscribe(room: string): Promise<void>;
  unsubscribe(room: string): Promise<void>;
  onMessage(handler: BusHandler): void;
  onGap(handler: GapHandler): void;
  /**
   * The last position of the room handed to the handlers; START before any. Every message routed to
   * this node up to it has been handed on.
   */
  position(room: string): Position;
  /**
   * The room's messages after `after` up to and including `until`, oldest first. `isComplete` is
   * false when the log had already dropped some of them.
   */
  read(room: string, after: Position, until: Position): Promise<{ entries: LogEntry[]; isComplete: boolean }>;
  isUp(): boolean;
  close(): Promise<void>;
}

/** Negative when a is before b, 0 when equal, positive after. Positions are `<ms>-<seq>`. */
export function comparePositions(a: Position, b: Position): number {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  const ma = Number(a.slice(0, da));
  const mb = Number(b.slice(0, db));
  if (ma !== mb) return ma - mb;
  return Number(a.slice(da + 1)) - Number(b.slice(db + 1));
}
