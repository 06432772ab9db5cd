// An in-test stand-in for cluster nodes: a ws server speaking enough of protocol v1 (join with
// resume, leave, signal, broadcast, state CAS, ping) over a room table that several FakeNodes can
// share, plus the knobs the client tests need (hold the welcome, swallow frames, drain, kill).
import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

type Json = Record<string, unknown>;

interface Member {
  id: string;
  name: string;
  meta: Json;
  resume: string;
  conn: FakeConnection | null;
  /** Signals addressed to the member while it had no connection, delivered on resume. */
  missed: string[];
}

interface Room {
  version: number;
  data: Json | null;
  members: Map<string, Member>;
}

/** The cluster-wide part: rooms and resume tokens, shared by every FakeNode given the same one. */
export class FakeRooms {
  readonly rooms = new Map<string, Room>();
  private seq = 0;

  newId(prefix: string): string {
    return `${prefix}${++this.seq}`;
  }

  room(name: string): Room {
    let room = this.rooms.get(name);
    if (!room) this.rooms.set(name, (room = { version: 0, data: null, members: new Map() }));
    return room;
  }

  /** What the grace period ending does on a real cluster: the member is gone, the others are told. */
  evict(roomName: string, id: string, reason = 'disconnected'): void {
    const room = this.room(roomName);
    room.members.delete(id);
    for (const m of room.members.values()) m.conn?.send({ type: 'peer-left', room: roomName, peer: { id }, reason });
  }

  /** Changes the state as another participant would; members get the `state` event. */
  setState(roomName: string, data: Json): number {
    const room = this.room(roomName);
    room.version += 1;
    room.data = data;
    for (const m of room.members.values())
      m.conn?.send({ type: 'state', room: roomName, version: room.version, data, from: 'outsider' });
    return room.version;
  }
}

export class FakeConnection {
  readonly received: Json[] = [];
  readonly memberships = new Map<string, Member>();

  constructor(
    readonly socket: WebSocket,
    readonly node: FakeNode,
  ) {}

  send(message: Json): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(message));
  }
}

export interface FakeNodeOptions {
  /** Called for every decoded frame before the default handling; return true to suppress it. */
  intercept?: (conn: FakeConnection, message: Json) => boolean;
  /** Accept sockets but send `welcome` only when `releaseWelcome()` is called. */
  holdWelcome?: boolean;
  heartbeatMs?: number;
  port?: number;
  /** Serve /ws on an existing HTTP server instead of a new port. */
  server?: import('node:http').Server;
  /** Hand out ICE servers lasting this long in `joined` and on `ice-servers`. */
  iceServersTtlMs?: number;
}

export class FakeNode extends EventEmitter {
  readonly connections: FakeConnection[] = [];
  private readonly waitingForWelcome: FakeConnection[] = [];
  private isHoldingWelcome: boolean;
  private issued = 0;

  private constructor(
    readonly id: string,
    private readonly server: WebSocketServer,
    readonly rooms: FakeRooms,
    private readonly options: FakeNodeOptions,
  ) {
    super();
    this.isHoldingWelcome = options.holdWelcome ?? false;
    server.on('connection', (socket) => this.accept(socket));
  }

  static async start(rooms = new FakeRooms(), options: FakeNodeOptions = {}): Promise<FakeNode> {
    const server = options.server
      ? new WebSocketServer({ server: options.server, path: '/ws' })
      : new WebSocketServer({ host: '127.0.0.1', port: options.port ?? 0, path: '/ws' });
    if (!options.server) await once(server, 'listening');
    return new FakeNode(rooms.newId('node-'), server, rooms, options);
  }

  get port(): number {
    return ((this.options.server ?? this.server).address() as AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Every frame received on this node, in order. */
  get frames(): Json[] {
    return this.connections.flatMap((c) => c.received);
  }

  nextConnection(): Promise<FakeConnection> {
    return new Promise((resolve) => this.once('connection', resolve));
  }

  /** Resolves with the first frame (already received or still to come) matching `predicate`. */
  frame(predicate: (m: Json) => boolean): Promise<Json> {
    const seen = this.frames.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const listener = (m: Json): void => {
        if (!predicate(m)) return;
        this.off('frame', listener);
        resolve(m);
      };
      this.on('frame', listener);
    });
  }

  releaseWelcome(): void {
    this.isHoldingWelcome = false;
    for (const conn of this.waitingForWelcome.splice(0)) this.welcome(conn);
  }

  /** What a draining node does: ask for a reconnect, then close with 1012. */
  drain(retryAfterMs: number, closeAfterMs = 0): void {
    for (const conn of this.connections) {
      conn.send({ type: 'reconnect', retryAfterMs });
      setTimeout(() => conn.socket.close(1012, 'draining'), closeAfterMs);
    }
  }

  /** Cuts every connection without a close frame, like a crashed node. */
  killConnections(): void {
    for (const conn of this.connections) conn.socket.terminate();
  }

  async stop(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: WebSocket): void {
    const conn = new FakeConnection(socket, this);
    this.connections.push(conn);
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as Json;
      conn.received.push(message);
      this.emit('frame', message, conn);
      if (this.options.intercept?.(conn, message)) return;
      this.respond(conn, message);
    });
    socket.on('close', () => {
      for (const member of conn.memberships.values()) if (member.conn === conn) member.conn = null;
    });
    if (this.isHoldingWelcome) this.waitingForWelcome.push(conn);
    else this.welcome(conn);
    this.emit('connection', conn);
  }

  private welcome(conn: FakeConnection): void {
    conn.send({ type: 'welcome', protocol: 1, node: this.id, heartbeatMs: this.options.heartbeatMs ?? 25_000 });
  }

  /** The default handling of a frame; for intercepted frames whose answer a test delays. */
  respond(conn: FakeConnection, m: Json): void {
    const id = m.id as string | number | undefined;
    const roomName = m.room as string;
    const fail = (code: string, extra: Json = {}): void => conn.send({ type: 'error', id, code, message: code, ...extra });
    const member = conn.memberships.get(roomName);
    const peerOf = (p: Member): Json => ({ id: p.id, name: p.name, meta: p.meta });
    const ttlMs = this.options.iceServersTtlMs;
    // A new username each time, so a test can tell renewals apart.
    const ice = (p: Member): Json =>
      ttlMs === undefined
        ? {}
        : {
            iceServers: [{ urls: ['turn:turn.test'], username: `${this.id}.${++this.issued}:${p.id}`, credential: 'c' }],
            iceServersTtlMs: ttlMs,
          };
    switch (m.type) {
      case 'ping':
        return conn.send({ type: 'pong', id });
      case 'join': {
        if (member) return fail('already-joined');
        const room = this.rooms.room(roomName);
        const resumed = [...room.members.values()].find((p) => p.resume === m.resume && m.resume !== undefined);
        const self: Member = resumed ?? {
          id: this.rooms.newId('p-'),
          name: (m.name as string | undefined) ?? '',
          meta: (m.meta as Json | undefined) ?? {},
          resume: '',
          conn: null,
          missed: [],
        };
        self.resume = this.rooms.newId('resume-');
        self.conn = conn;
        conn.memberships.set(roomName, self);
        const peers = [...room.members.values()].filter((p) => p !== self).map(peerOf);
        if (!resumed) {
          for (const p of room.members.values()) p.conn?.send({ type: 'peer-joined', room: roomName, peer: peerOf(self) });
          room.members.set(self.id, self);
        }
        conn.send({
          type: 'joined',
          id,
          room: roomName,
          self: peerOf(self),
          peers,
          state: { version: room.version, data: room.data },
          resume: self.resume,
          resumed: resumed !== undefined,
          ...ice(self),
        });
        for (const text of self.missed.splice(0)) conn.socket.send(text);
        return;
      }
      case 'ice-servers':
        if (!member) return fail('not-joined');
        return conn.send({ type: 'ice-servers', id, room: roomName, iceServers: [], ...ice(member) });
      case 'leave':
        if (!member) return fail('not-joined');
        conn.memberships.delete(roomName);
        this.rooms.evict(roomName, member.id, 'left');
        return conn.send({ type: 'left', id, room: roomName });
      case 'signal': {
        if (!member) return fail('not-joined');
        const target = this.rooms.room(roomName).members.get(m.to as string);
        if (!target) return fail('peer-not-found');
        const text = JSON.stringify({ type: 'signal', room: roomName, from: member.id, data: m.data });
        if (target.conn) target.conn.socket.send(text);
        else target.missed.push(text);
        if (id !== undefined) conn.send({ type: 'ack', id });
        return;
      }
      case 'broadcast': {
        if (!member) return fail('not-joined');
        for (const p of this.rooms.room(roomName).members.values()) {
          if (p !== member) p.conn?.send({ type: 'broadcast', room: roomName, from: member.id, data: m.data });
        }
        if (id !== undefined) conn.send({ type: 'ack', id });
        return;
      }
      case 'state': {
        if (!member) return fail('not-joined');
        const room = this.rooms.room(roomName);
        if (m.version !== room.version) return fail('version-conflict', { state: { version: room.version, data: room.data } });
        room.version += 1;
        room.data = m.data as Json;
        for (const p of room.members.values()) {
          if (p !== member)
            p.conn?.send({ type: 'state', room: roomName, version: room.version, data: room.data, from: member.id });
        }
        return conn.send({ type: 'ack', id, version: room.version });
      }
      default:
        return fail('bad-request');
    }
  }
}
