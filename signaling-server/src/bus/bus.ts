// The cross-node message bus: publish a string to a room's channel, receive what any node published
// to the rooms this node subscribed to. Redis pub/sub in a cluster, an in-process hub otherwise.
// A publisher receives its own messages too; telling them apart is the caller's business.

export type BusHandler = (room: string, payload: string) => void;

export interface RoomBus {
  /** Resolves once the bus accepted the message; rejects fast when the bus is unreachable. */
  publish(room: string, payload: string): Promise<void>;
  subscribe(room: string): Promise<void>;
  unsubscribe(room: string): Promise<void>;
  onMessage(handler: BusHandler): void;
  /** True while messages can flow (Redis connected, subscriptions restored). */
  isUp(): boolean;
  close(): Promise<void>;
}
