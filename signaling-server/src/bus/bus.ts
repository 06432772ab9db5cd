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

/** Receives each message once, in the room's log order, with its position. */
export type BusHandler = (room: string, payload: string, position: Position) => void;

/** Messages of a room may have been lost for this node: they are not in the log any more. */
export type GapHandler = (room: string) => void;

/**
 * The contract every bus keeps:
 * - Order: each room has one log; every subscriber receives a room's messages in log order, each
 *   once, including its own (the publisher tells them apart). No order holds across rooms.
 * - Delivery: publish() resolves once the message is in the room's log, with its position. A
 *   subscriber that misses messages (its connection dropped, its buffer was cut) reads them back
 *   from the log before anything later; when the log no longer holds them, it reports a gap to
 *   onGap() and goes on from what it has.
 * - Retention: the log keeps a room's messages for the retention the bus was built with, so a
 *   participant's gap can be read back with read() when it resumes.
 * - Failure: publish() rejects fast when the bus is unreachable (the message was not logged);
 *   subscribe() rejects after its timeout; isUp() is false while either direction is down or a
 *   subscription is being restored.
 */
export interface RoomBus {
  publish(room: string, payload: string): Promise<Position>;
  subscribe(room: string): Promise<void>;
  unsubscribe(room: string): Promise<void>;
  onMessage(handler: BusHandler): void;
  onGap(handler: GapHandler): void;
  /** The last position of the room handed to the handlers; START before any. */
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
