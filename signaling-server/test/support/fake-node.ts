// A node without sockets, for unit tests of the rooms layer: a RoomService on the in-memory bus and
// store, with links that record what would have been sent, and uWS-like topics.
import { pino } from 'pino';
import type { TokenVerifier } from '../../src/auth/token-verifier.js';
import type { MemoryBus, MemoryHub } from '../../src/bus/memory-bus.js';
import { MemoryGapRecords, type GapRecords } from '../../src/bus/gap-records.js';
import { createMetrics } from '../../src/metrics.js';
import { decodeClientMessage, ServerMessage } from '../../src/protocol/messages.js';
import { RoomService } from '../../src/rooms/room-service.js';
import type { ClientLink, Session } from '../../src/rooms/session.js';
import type { RoomStore } from '../../src/store/store.js';

export class FakeClient {
  readonly frames: ServerMessage[] = [];
  readonly session: Session;
  private waiters: { predicate: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  private nextId = 1;

  constructor(
    private readonly node: FakeNode,
    link: (client: FakeClient) => ClientLink,
  ) {
    this.session = node.service.connect(link(this));
  }

  receive(frame: string): void {
    const msg = ServerMessage.parse(JSON.parse(frame));
    this.frames.push(msg);
    const waiter = this.waiters.find((w) => w.predicate(msg));
    if (waiter) {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.resolve(msg);
    }
  }

  send(message: Record<string, unknown>): void {
    this.node.service.handle(this.session, decodeClientMessage(JSON.stringify(message)));
  }

  request(message: Record<string, unknown>): Promise<ServerMessage> {
    const id = this.nextId++;
    const reply = this.waitFor((m) => 'id' in m && m.id === id);
    this.send({ ...message, id });
    return reply;
  }

  waitFor(predicate: (m: ServerMessage) => boolean): Promise<ServerMessage> {
    const found = this.frames.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  of<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[] {
    return this.frames.filter((f) => f.type === type) as Extract<ServerMessage, { type: T }>[];
  }

  close(reason: 'disconnected' | 'timeout' = 'disconnected'): void {
    this.node.service.closeSession(this.session, reason);
  }
}

export class FakeNode {
  readonly service: RoomService;
  readonly bus: MemoryBus;
  readonly metrics = createMetrics();
  private readonly topics = new Map<string, Set<FakeClient>>();

  constructor(
    readonly id: string,
    hub: MemoryHub,
    store: RoomStore,
    opts: {
      maxParticipantsPerRoom?: number;
      resumeGraceMs?: number;
      verifier?: TokenVerifier;
      gapRecords?: GapRecords;
      handoverWaitMs?: number;
    } = {},
  ) {
    this.bus = hub.createBus(id);
    this.service = new RoomService({
      nodeId: id,
      store,
      bus: this.bus,
      fanout: {
        publish: (topic, frame) => this.topics.get(topic)?.forEach((c) => c.receive(frame)),
        subscriberCount: (topic) => this.topics.get(topic)?.size ?? 0,
      },
      metrics: this.metrics,
      log: pino({ level: 'silent' }),
      resumeGraceMs: opts.resumeGraceMs ?? 10_000,
      maxRoomsPerConnection: 4,
      maxParticipantsPerRoom: opts.maxParticipantsPerRoom ?? 50,
      maxMetaBytes: 4096,
      verifier: opts.verifier ?? null,
      gapRecords: opts.gapRecords ?? new MemoryGapRecords(),
      handoverWaitMs: opts.handoverWaitMs ?? 500,
      checkpointMs: 0,
      retryMs: 10,
    });
  }

  connect(): FakeClient {
    return new FakeClient(this, (client) => ({
      send: (frame) => client.receive(frame),
      subscribe: (topic) => {
        if (!this.topics.has(topic)) this.topics.set(topic, new Set());
        this.topics.get(topic)!.add(client);
      },
      unsubscribe: (topic) => this.topics.get(topic)?.delete(client),
      publish: (topic, frame) => this.topics.get(topic)?.forEach((c) => c !== client && c.receive(frame)),
      close: () => {},
    }));
  }
}
