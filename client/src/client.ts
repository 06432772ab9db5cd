// SignalingClient: the SDK's entry point. Requests with promised replies, the rooms it is in, and
// continuity across reconnects: rooms are re-joined with their resume tokens, and messages sent
// meanwhile are held until then. A message whose reply was lost with a connection is not sent
// again (it fails with `disconnected`), because the server may already have acted on it.
import type { BackoffOptions } from './backoff.js';
import { Connection, type ReconnectReason } from './connection.js';
import { Emitter } from './emitter.js';
import { IceRefresher } from './ice-refresh.js';
import { SignalingError, type SignalingErrorCode } from './errors.js';
import type { SignalingEvents } from './events.js';
import { Outbox } from './outbox.js';
import type {
  AckMessage,
  ClientMessage,
  IceServer,
  IceServersMessage,
  JoinedMessage,
  JsonObject,
  RoomState,
  ServerMessage,
  WelcomeMessage,
} from './protocol.js';
import { PendingRequests } from './requests.js';
import { type JoinOptions, type RoomSnapshot, RoomRegistry } from './rooms.js';
import { type WebSocketConstructor, defaultWebSocket } from './socket.js';

export type { ReconnectReason };

export interface SignalingClientOptions {
  /** `ws(s)://host/ws`, or several nodes' URLs: each new connection takes the next one. */
  url: string | string[];
  /** WebSocket implementation; defaults to the global one (pass `ws`'s `WebSocket` in Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Sent as `?token=` on every connection; a function is called before each one. */
  token?: string | (() => string | undefined | Promise<string | undefined>);
  /** How long a request waits for its reply once sent. Default 10 s. */
  requestTimeoutMs?: number;
  /** How long a new connection may take to deliver `welcome`. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * After this much silence a `ping` is sent, and the connection is dropped when nothing answers
   * within `requestTimeoutMs`. Default: the server's `heartbeatMs`; 0 disables.
   */
  heartbeatMs?: number;
  /** Reconnect delays (exponential with jitter) and the attempt limit; `false` turns reconnecting off. */
  reconnect?: (BackoffOptions & { maxAttempts?: number }) | false;
  /** Messages held while disconnected, beyond which the oldest fail with `queue-full`. Default 1000. */
  maxQueuedMessages?: number;
  /**
   * Renew each room's ICE servers at 80 % of their lifetime and emit `ice-servers`, so TURN
   * credentials never run out during a long call. Default true.
   */
  refreshIceServers?: boolean;
}

export type ConnectionState = 'idle' | 'connecting' | 'rejoining' | 'open' | 'reconnecting' | 'closed';

export interface JoinedRoom extends RoomSnapshot {
  resumed: boolean;
}

/** Re-join failures that concern the room and the caller, not the node's health. */
const ROOM_LOST_CODES = new Set<SignalingErrorCode>(['unauthorized', 'forbidden', 'room-full', 'too-many-rooms', 'bad-request']);

export class SignalingClient extends Emitter<SignalingEvents> {
  private readonly connection: Connection;
  private readonly requests: PendingRequests;
  private readonly rooms = new RoomRegistry();
  private readonly outbox: Outbox;
  private readonly ice: IceRefresher | undefined;
  private connectionState: ConnectionState = 'idle';
  private hasBeenOpen = false;
  private currentNode: string | undefined;
  /** Why the client is closed, once it is: what every request fails with from then on. */
  private closeError: SignalingError | undefined;
  /** Bumped on every welcome, so a re-join that outlives its socket knows it is stale. */
  private generation = 0;
  private connected:
    | { promise: Promise<{ node: string }>; resolve: (v: { node: string }) => void; reject: (e: SignalingError) => void }
    | undefined;

  constructor(options: SignalingClientOptions) {
    super();
    const urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (urls.length === 0) throw new TypeError('SignalingClient: at least one url is required');
    const WebSocket = options.WebSocket ?? defaultWebSocket();
    if (!WebSocket) throw new TypeError('SignalingClient: no global WebSocket; pass the WebSocket option');
    const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.requests = new PendingRequests(requestTimeoutMs);
    this.outbox = new Outbox(options.maxQueuedMessages ?? 1000);
    if (options.refreshIceServers !== false) this.ice = new IceRefresher((room) => this.refreshIceServers(room));
    this.connection = new Connection(
      {
        urls,
        WebSocket,
        token: options.token,
        connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
        heartbeatMs: options.heartbeatMs,
        heartbeatTimeoutMs: requestTimeoutMs,
        reconnect: options.reconnect === false ? undefined : (options.reconnect ?? {}),
      },
      {
        welcome: (m) => this.handleWelcome(m),
        message: (m) => this.handleMessage(m),
        down: (e) => this.handleDown(e),
        reconnecting: (e) => {
          this.connectionState = 'reconnecting';
          this.emit('reconnecting', e);
        },
        closed: (e) => this.handleClosed(e),
      },
    );
  }

  /** Messages are written only when `open`; in every other state but `closed` they are held. */
  get state(): ConnectionState {
    return this.connectionState;
  }

  /** Why the client is closed (`closed`, `kicked`, `unauthorized`, ...); undefined while it is not. */
  get closedWith(): SignalingError | undefined {
    return this.closeError;
  }

  /** The node the current connection landed on, from its `welcome`. */
  get node(): string | undefined {
    return this.currentNode;
  }

  /** Rooms this client is in, including while it is reconnecting to them. */
  get roomNames(): string[] {
    return this.rooms.names();
  }

  room(room: string): RoomSnapshot | undefined {
    return this.rooms.snapshot(room);
  }

  /**
   * Opens the connection; resolves once it is usable. A failed first attempt is retried like any
   * other, so this waits until a node answers or the attempts run out.
   */
  connect(): Promise<{ node: string }> {
    if (this.connected) return this.connected.promise;
    if (this.closeError) return Promise.reject(this.closeError);
    let resolve!: (v: { node: string }) => void;
    let reject!: (e: SignalingError) => void;
    const promise = new Promise<{ node: string }>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.connected = { promise, resolve, reject };
    this.connectionState = 'connecting';
    this.connection.start();
    return promise;
  }

  /** Skips the backoff wait before the next attempt (e.g. when the browser is back online). */
  reconnectNow(): void {
    this.connection.reconnectNow();
  }

  /** Ends the client for good: pending and held messages fail with `closed`. */
  close(): void {
    if (this.connectionState === 'idle') {
      this.handleClosed({ code: 1000, reason: 'client closed', error: new SignalingError('closed', 'client closed') });
    } else this.connection.close();
  }

  async join(room: string, options: JoinOptions = {}): Promise<JoinedRoom> {
    const reply = (await this.request({ type: 'join', room, ...options })) as JoinedMessage;
    this.rooms.add(reply, options);
    this.ice?.schedule(room, reply.iceServersTtlMs);
    const snapshot = this.rooms.snapshot(room)!;
    this.emit('joined', { ...snapshot, resumed: false, isRejoin: false });
    return { ...snapshot, resumed: false };
  }

  async leave(room: string): Promise<void> {
    try {
      await this.request({ type: 'leave', room });
    } catch (error) {
      // The server no longer has us there, which is what leaving wanted.
      const isGone = error instanceof SignalingError && (error.code === 'not-joined' || error.code === 'room-lost');
      if (!isGone) throw error;
    }
    this.ice?.cancel(room);
    if (this.rooms.remove(room)) this.emit('left', { room });
  }

  /**
   * Asks the cluster for fresh ICE servers for this client's participant in `room` (the client
   * also does this by itself before they expire). Resolves with them, empty when the cluster hands
   * out none, and emits `ice-servers`.
   */
  async refreshIceServers(room: string): Promise<IceServer[]> {
    const reply = (await this.request({ type: 'ice-servers', room })) as IceServersMessage;
    if (!this.rooms.setIceServers(room, reply.iceServers)) return reply.iceServers; // left meanwhile
    this.ice?.schedule(room, reply.iceServersTtlMs);
    this.emit('ice-servers', { room, iceServers: reply.iceServers });
    return reply.iceServers;
  }

  /** Sends `data` to one participant; resolves on the server's `ack`, or at once with `ack: false`. */
  signal(room: string, to: string, data: unknown, options: { ack?: boolean } = {}): Promise<void> {
    return this.send({ type: 'signal', room, to, data }, options.ack ?? true);
  }

  /** Sends `data` to every other participant of the room. */
  broadcast(room: string, data: unknown, options: { ack?: boolean } = {}): Promise<void> {
    return this.send({ type: 'broadcast', room, data }, options.ack ?? true);
  }

  /**
   * Compare-and-set of the room's state against `version` (default: the version this client last
   * saw); resolves with the new version. A `version-conflict` rejection carries the current state,
   * which the client also takes as its own (and emits as a `state` event).
   */
  async setState<T extends JsonObject>(room: string, data: T, version?: number): Promise<number> {
    const base = version ?? this.rooms.state(room)?.version ?? 0;
    try {
      const ack = (await this.request({ type: 'state', room, data, version: base })) as AckMessage;
      const next = ack.version ?? base + 1;
      this.takeState(room, { version: next, data }, this.rooms.selfId(room), true);
      return next;
    } catch (error) {
      if (error instanceof SignalingError && error.code === 'version-conflict' && error.state) {
        this.takeState(room, error.state, undefined, true);
      }
      throw error;
    }
  }

  /**
   * Read-modify-write of the room's state: `update` gets the current data and returns the new
   * data, or undefined to leave it. On a conflict it runs again on the state the server returned,
   * at most `maxAttempts` times in all (default 8).
   */
  async updateState<T extends JsonObject>(
    room: string,
    update: (current: T | null, version: number) => T | undefined,
    options: { maxAttempts?: number } = {},
  ): Promise<RoomState<T>> {
    const maxAttempts = options.maxAttempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      const current = (this.rooms.state(room) ?? { version: 0, data: null }) as RoomState<T>;
      const next = update(current.data, current.version);
      if (next === undefined) return current;
      try {
        const version = await this.setState(room, next, current.version);
        return { version, data: next };
      } catch (error) {
        const isConflict = error instanceof SignalingError && error.code === 'version-conflict';
        if (!isConflict || attempt >= maxAttempts) throw error;
      }
    }
  }

  /** Round trip to the node in milliseconds. */
  async ping(): Promise<number> {
    const started = Date.now();
    await this.request({ type: 'ping' });
    return Date.now() - started;
  }

  // ---- sending --------------------------------------------------------------------------------

  private async send(message: ClientMessage, isAcked: boolean): Promise<void> {
    if (isAcked) {
      await this.request(message);
    } else if (this.closeError) {
      throw this.closeError;
    } else if (this.connectionState === 'open') {
      this.connection.send(JSON.stringify(message));
    } else {
      this.outbox.hold({ message });
    }
  }

  private request(message: ClientMessage): Promise<ServerMessage> {
    if (this.closeError) return Promise.reject(this.closeError);
    if (this.connectionState === 'open') return this.sendNow(message);
    return new Promise((resolve, reject) => this.outbox.hold({ message, resolve, reject }));
  }

  /** Writes with a fresh id and waits for the reply that echoes it. */
  private sendNow(message: ClientMessage): Promise<ServerMessage> {
    const id = this.requests.allocateId();
    const reply = this.requests.track(id, message.type);
    this.connection.send(JSON.stringify({ ...message, id }));
    return reply;
  }

  // ---- what the connection reports ------------------------------------------------------------

  private handleWelcome(welcome: WelcomeMessage): void {
    this.currentNode = welcome.node;
    this.emit('welcome', { node: welcome.node, protocol: welcome.protocol, heartbeatMs: welcome.heartbeatMs });
    void this.rejoinRooms(++this.generation);
  }

  private handleMessage(message: ServerMessage): void {
    if (this.requests.settle(message)) return;
    switch (message.type) {
      case 'peer-joined':
        if (this.rooms.addPeer(message.room, message.peer)) {
          this.emit('peer-joined', { room: message.room, peer: message.peer, isReconciled: false });
        }
        return;
      case 'peer-left':
        if (this.rooms.removePeer(message.room, message.peer.id)) {
          this.emit('peer-left', { room: message.room, peer: message.peer, reason: message.reason, isReconciled: false });
        }
        return;
      case 'signal':
      case 'broadcast':
        if (this.rooms.has(message.room)) this.emit(message.type, { room: message.room, from: message.from, data: message.data });
        return;
      case 'kicked':
        // Out of the room for good: it is not re-joined after a reconnect, which would make a new
        // participant of someone an operator just removed.
        if (this.rooms.remove(message.room)) {
          this.ice?.cancel(message.room);
          this.emit('kicked', { room: message.room, reason: message.reason });
        }
        return;
      case 'server':
        if (this.rooms.has(message.room)) this.emit('server', { room: message.room, data: message.data });
        return;
      case 'state':
        this.takeState(message.room, { version: message.version, data: message.data }, message.from, false);
        return;
      case 'error':
        this.emit('error', new SignalingError(message.code, message.message, message.state));
        return;
      default:
        // A reply to a request that already timed out, or a message type newer than this client.
        return;
    }
  }

  private handleDown(event: { code: number; reason: string; willReconnect: boolean }): void {
    this.generation++;
    // Before anything is emitted, so that a listener that sends gets its message held.
    if (event.willReconnect) this.connectionState = 'reconnecting';
    // A final close is followed at once by `closed`, which fails them with its reason instead.
    if (event.willReconnect) {
      this.requests.rejectAll(() => new SignalingError('disconnected', 'the connection closed before the reply'));
    }
    this.emit('disconnected', event);
  }

  private handleClosed(event: { code: number; reason: string; error: SignalingError }): void {
    if (this.connectionState === 'closed') return;
    this.connectionState = 'closed';
    const { error } = event;
    this.closeError = error;
    this.requests.rejectAll(() => error);
    this.outbox.rejectAll(error);
    this.ice?.cancelAll();
    if (this.connected) {
      this.connected.promise.catch(() => {}); // the caller may have stopped waiting on connect()
      this.connected.reject(error);
    }
    this.emit('closed', event);
  }

  private takeState(room: string, state: RoomState, from: string | undefined, isAuthoritative: boolean): void {
    if (this.rooms.applyState(room, state, isAuthoritative)) {
      this.emit('state', { room, version: state.version, data: state.data, from });
    }
  }

  /** After `welcome`: re-join every room with its resume token, then release the held messages. */
  private async rejoinRooms(generation: number): Promise<void> {
    this.connectionState = 'rejoining';
    const names = this.rooms.names();
    const results = await Promise.allSettled(
      names.map((room) => this.sendNow({ type: 'join', ...this.rooms.rejoinRequest(room) }) as Promise<JoinedMessage>),
    );
    if (generation !== this.generation) return; // that socket is gone; the next welcome starts over
    const lost = new Map<string, SignalingError>();
    for (const [i, result] of results.entries()) {
      const room = names[i]!;
      if (result.status === 'fulfilled') {
        this.applyRejoin(result.value);
        continue;
      }
      const error =
        result.reason instanceof SignalingError ? result.reason : new SignalingError('internal', String(result.reason));
      if (!ROOM_LOST_CODES.has(error.code)) {
        // The node could not serve the re-join (unavailable, timeout, ...): try another socket.
        this.connection.drop(4001, 'rejoin failed', 'rejoin-failed');
        return;
      }
      this.rooms.remove(room);
      this.ice?.cancel(room);
      lost.set(room, new SignalingError('room-lost', `could not re-join ${room}: ${error.message}`));
      this.emit('room-lost', { room, error });
    }
    const isReconnect = this.hasBeenOpen;
    this.connectionState = 'open';
    this.hasBeenOpen = true;
    this.connection.markHealthy();
    this.outbox.release(
      lost,
      (message) => this.sendNow(message),
      (text) => this.connection.send(text),
    );
    const node = this.currentNode ?? '';
    this.emit('connected', { node, isReconnect });
    this.connected?.resolve({ node });
  }

  private applyRejoin(joined: JoinedMessage): void {
    const change = this.rooms.rejoin(joined);
    const room = joined.room;
    for (const id of change.removed) this.emit('peer-left', { room, peer: { id }, reason: 'disconnected', isReconciled: true });
    for (const peer of change.added) this.emit('peer-joined', { room, peer, isReconciled: true });
    const snapshot = this.rooms.snapshot(room)!;
    if (joined.iceServers) {
      this.ice?.schedule(room, joined.iceServersTtlMs);
      this.emit('ice-servers', { room, iceServers: joined.iceServers });
    }
    if (change.isStateChanged) {
      this.emit('state', { room, version: snapshot.state.version, data: snapshot.state.data, from: undefined });
    }
    this.emit('joined', { ...snapshot, resumed: change.resumed, isRejoin: true });
  }
}
