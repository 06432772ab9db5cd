// The in-process bus: one hub, any number of buses attached to it. A single embedded node uses one;
// unit tests attach several to stand in for several nodes. Delivery is asynchronous, as with Redis.
import type { BusHandler, RoomBus } from './bus.js';

export class MemoryHub {
  private readonly buses = new Set<MemoryBus>();

  createBus(): MemoryBus {
    const bus = new MemoryBus(this);
    this.buses.add(bus);
    return bus;
  }

  /** @internal */
  deliver(room: string, payload: string): void {
    for (const bus of this.buses) bus.receive(room, payload);
  }

  /** @internal */
  detach(bus: MemoryBus): void {
    this.buses.delete(bus);
  }
}

export class MemoryBus implements RoomBus {
  private readonly rooms = new Set<string>();
  private readonly handlers: BusHandler[] = [];
  private isClosed = false;

  constructor(private readonly hub: MemoryHub) {}

  async publish(room: string, payload: string): Promise<void> {
    if (this.isClosed) throw new Error('bus closed');
    // Messages are delivered in publish order, after the publisher's current task, like Redis.
    queueMicrotask(() => this.hub.deliver(room, payload));
  }

  async subscribe(room: string): Promise<void> {
    this.rooms.add(room);
  }

  async unsubscribe(room: string): Promise<void> {
    this.rooms.delete(room);
  }

  onMessage(handler: BusHandler): void {
    this.handlers.push(handler);
  }

  isUp(): boolean {
    return !this.isClosed;
  }

  async close(): Promise<void> {
    this.isClosed = true;
    this.hub.detach(this);
  }

  /** @internal */
  receive(room: string, payload: string): void {
    if (!this.rooms.has(room)) return;
    for (const handler of this.handlers) handler(room, payload);
  }
}
