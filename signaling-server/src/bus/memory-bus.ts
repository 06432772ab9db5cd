// The in-process bus: one hub, any number of buses attached to it. A single embedded node uses one;
// unit tests attach several to stand in for several nodes. The hub keeps each room's log for the
// retention, as Redis does, and routes messages for one participant to the bus (node) that holds
// it; delivery is asynchronous and in log order, and nothing is ever missed.
import {
  Route,
  START,
  comparePositions,
  type BusHandler,
  type GapHandler,
  type LogEntry,
  type Position,
  type RoomBus,
} from './bus.js';

interface HubEntry extends LogEntry {
  /** The room's previous position: a read that does not start right after `after` lost some. */
  prev: Position;
  at: number;
}

export class MemoryHub {
  private readonly buses = new Set<MemoryBus>();
  private readonly logs = new Map<string, HubEntry[]>();
  /** Per room, per participant: the node whose latest Home named it, and that Home's epoch. */
  private readonly homes = new Map<string, Map<string, { nodeId: string; epoch: number }>>();
  private counter = 0;

  constructor(private readonly retentionMs = 60_000) {}

  /** A bus for the node `nodeId` (each bus its own node unless told otherwise). */
  createBus(nodeId = `memory-${this.buses.size + 1}-${++this.counter}`): MemoryBus {
    const bus = new MemoryBus(this, nodeId);
    this.buses.add(bus);
    return bus;
  }

  /**
   * @internal Logs a message and hands it, on the next microtask, to every bus it is routed to:
   * all of them, or for a To route only the holder's when one is known.
   */
  append(room: string, payload: string, origin: string, route: Route, participant: string, epoch: number): Position {
    let holder: string | undefined;
    if (route !== Route.Room) {
      let homes = this.homes.get(room);
      if (!homes) this.homes.set(room, (homes = new Map()));
      const home = homes.get(participant);
      if (route === Route.To) holder = home?.nodeId;
      else if (route === Route.Gone) homes.delete(participant);
      else if (!home || home.epoch <= epoch) homes.set(participant, { nodeId: origin, epoch });
    }
    const now = Date.now();
    let log = this.logs.get(room);
    if (!log) this.logs.set(room, (log = []));
    const prev = log.at(-1)?.position ?? START;
    while (log.length > 0 && log[0]!.at < now - this.retentionMs) log.shift();
    const position = `${++this.counter}-0`;
    log.push({ position, prev, payload, at: now });
    queueMicrotask(() => {
      for (const bus of this.buses) if (holder === undefined || bus.nodeId === holder) bus.receive(room, payload, position);
    });
    return position;
  }

  /** @internal */
  read(room: string, after: Position, until: Position): { entries: LogEntry[]; isComplete: boolean } {
    const log = this.logs.get(room) ?? [];
    const kept = log.filter(
      (e) => comparePositions(e.position, after) > 0 && (until === '+' || comparePositions(e.position, until) <= 0),
    );
    const isComplete = kept.length === 0 ? until === '+' || after === until : kept[0]!.prev === after;
    return { entries: kept.map(({ position, payload }) => ({ position, payload })), isComplete };
  }

  /** @internal */
  last(room: string): Position {
    return this.logs.get(room)?.at(-1)?.position ?? START;
  }

  /** @internal */
  detach(bus: MemoryBus): void {
    this.buses.delete(bus);
  }
}

export class MemoryBus implements RoomBus {
  /** Subscribed rooms and the last position handed on in each. */
  private readonly rooms = new Map<string, Position>();
  private readonly handlers: BusHandler[] = [];
  private isClosed = false;

  constructor(
    private readonly hub: MemoryHub,
    readonly nodeId: string,
  ) {}

  async publish(room: string, payload: string, route = Route.Room, participant = '', epoch = 0): Promise<Position> {
    if (this.isClosed) throw new Error('bus closed');
    return this.hub.append(room, payload, this.nodeId, route, participant, epoch);
  }

  async subscribe(room: string): Promise<void> {
    if (!this.rooms.has(room)) this.rooms.set(room, this.hub.last(room));
  }

  async unsubscribe(room: string): Promise<void> {
    this.rooms.delete(room);
  }

  onMessage(handler: BusHandler): void {
    this.handlers.push(handler);
  }

  /** Nothing is ever missed in one process. */
  onGap(_handler: GapHandler): void {}

  position(room: string): Position {
    return this.rooms.get(room) ?? START;
  }

  async read(room: string, after: Position, until: Position): Promise<{ entries: LogEntry[]; isComplete: boolean }> {
    return this.hub.read(room, after, until);
  }

  isUp(): boolean {
    return !this.isClosed;
  }

  async close(): Promise<void> {
    this.isClosed = true;
    this.hub.detach(this);
  }

  /** @internal */
  receive(room: string, payload: string, position: Position): void {
    const last = this.rooms.get(room);
    if (last === undefined || comparePositions(position, last) <= 0) return;
    this.rooms.set(room, position);
    for (const handler of this.handlers) handler(room, payload, position);
  }
}
