// One logical connection to the cluster over a succession of WebSockets: picks the next URL,
// waits for `welcome`, notices silence, honours drains, and reconnects with backoff. It knows
// nothing of rooms or requests; the client above re-joins and re-sends through its hooks.
import { Backoff, type BackoffOptions } from './backoff.js';
import { type ConnectFailure, SignalingError } from './errors.js';
import {
  parseServerMessage,
  type ErrorMessage,
  type KickedMessage,
  type ServerMessage,
  type WelcomeMessage,
} from './protocol.js';
import { type WebSocketConstructor, type WebSocketLike, describeSocketError, discard, withToken } from './socket.js';

export type ReconnectReason = 'closed' | 'drain' | 'heartbeat' | 'connect-timeout' | 'connect-failed' | 'rejoin-failed';

export interface ConnectionOptions {
  urls: string[];
  WebSocket: WebSocketConstructor;
  token?: string | (() => string | undefined | Promise<string | undefined>);
  connectTimeoutMs: number;
  /** Silence after which a ping is sent; undefined means the server's `heartbeatMs`, 0 disables. */
  heartbeatMs?: number;
  /** How long to wait for anything after that ping before giving the socket up. */
  heartbeatTimeoutMs: number;
  /** undefined: never reconnect. */
  reconnect?: BackoffOptions & { maxAttempts?: number };
  /** Attempts (the first included) before a connection that never had a `welcome` gives up. */
  maxConnectAttempts: number;
}

export interface ConnectionHooks {
  welcome(message: WelcomeMessage): void;
  message(message: ServerMessage): void;
  /** The socket is gone; `willReconnect` says whether another attempt follows. */
  down(event: { code: number; reason: string; willReconnect: boolean }): void;
  /** `failure` is present when the attempt before ended without a `welcome`. */
  reconnecting(event: { attempt: number; delayMs: number; reason: ReconnectReason; failure?: ConnectFailure }): void;
  /** No more attempts will be made; `error` says why. */
  closed(event: { code: number; reason: string; error: SignalingError }): void;
}

/** The node's close after it removed the connection from its last room (docs/protocol.md). */
const KICKED_CLOSE_CODE = 4001;
/** Close codes after which reconnecting would only repeat the refusal, or undo an operator's kick. */
const FINAL_CLOSE_CODES = new Set([1008, KICKED_CLOSE_CODE]);
/** How long a client told to reconnect waits, after the delay it was given, for the node to close. */
const DRAIN_CLOSE_WAIT_MS = 3000;

export class Connection {
  private readonly backoff: Backoff;
  private readonly maxAttempts: number;
  private socket: WebSocketLike | null = null;
  private urlIndex = -1;
  private isClosed = false;
  private welcomeTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private lastReceivedAt = 0;
  private pingSentAt: number | undefined;
  private isHonouringDrain = false;
  private drainCloseTimer: ReturnType<typeof setTimeout> | undefined;
  /** What the node last said about ending this socket (`kicked`, an `error` without id), which explains its close. */
  private lastWord: KickedMessage | ErrorMessage | undefined;
  /** Per socket: the upgrade completed, its `welcome` came, what its error event said, whether it carried a token. */
  private isUpgraded = false;
  private isWelcomed = false;
  private socketError: { message: string; status?: number } | undefined;
  private hasToken = false;
  /** Some socket has had a `welcome`: from then on only `reconnect.maxAttempts` bounds the attempts. */
  private hasBeenWelcomed = false;
  /** Why the last attempt without a `welcome` failed. */
  private lastFailure: ConnectFailure | undefined;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly hooks: ConnectionHooks,
  ) {
    this.backoff = new Backoff(options.reconnect ?? {});
    this.maxAttempts = options.reconnect ? (options.reconnect.maxAttempts ?? Infinity) : 0;
  }

  start(): void {
    void this.open();
  }

  /** Writes a frame; false when there is no socket to write to. */
  send(text: string): boolean {
    if (!this.socket) return false;
    try {
      this.socket.send(text);
      return true;
    } catch {
      return false; // still connecting or going away; its close event follows
    }
  }

  /** Whether the current socket carried a `?token=`, which the node may refuse right after `welcome`. */
  get carriesToken(): boolean {
    return this.hasToken;
  }

  /** The connection has proved usable, so the next failure starts the backoff afresh. */
  markHealthy(): void {
    this.backoff.reset();
  }

  /** Skips the wait before the next attempt, unless the server asked for that wait (a drain). */
  reconnectNow(): void {
    if (this.isClosed || this.socket || this.reconnectTimer === undefined || this.isHonouringDrain) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    void this.open();
  }

  /** Gives up on the current socket without waiting for its close event (which may take minutes). */
  drop(code: number, reason: string, why: ReconnectReason): void {
    if (!this.socket) return;
    discard(this.socket);
    this.handleClose(code, reason, why, false);
  }

  close(code = 1000, reason = 'client closed', error = new SignalingError('closed', reason)): void {
    if (this.isClosed) return;
    this.isClosed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.drainCloseTimer);
    const socket = this.detach();
    if (socket) discard(socket);
    this.hooks.closed({ code, reason, error });
  }

  private async open(): Promise<void> {
    this.urlIndex = (this.urlIndex + 1) % this.options.urls.length;
    const url = this.options.urls[this.urlIndex]!;
    this.isUpgraded = this.isWelcomed = false;
    let socket: WebSocketLike;
    try {
      const { token } = this.options;
      const value = typeof token === 'function' ? await token() : token;
      if (this.isClosed) return;
      socket = new this.options.WebSocket(withToken(url, value));
      this.hasToken = Boolean(value);
    } catch (error) {
      this.lastFailure = { message: error instanceof Error ? error.message : String(error), closeCode: 1006 };
      this.scheduleReconnect('connect-failed');
      return;
    }
    this.socket = socket;
    this.lastWord = undefined;
    this.socketError = undefined;
    socket.onopen = () => {
      if (this.socket === socket) this.isUpgraded = true;
    };
    this.lastReceivedAt = Date.now();
    socket.onmessage = (event: { data: unknown }) => this.handleFrame(event.data);
    socket.onclose = (event: { code?: number; reason?: string }) => {
      if (this.socket === socket) this.handleClose(event.code ?? 1006, event.reason ?? '', 'closed', true);
    };
    socket.onerror = (event: unknown) => {
      // A close event follows, where the end of the socket is handled; keep what this one says.
      if (this.socket === socket) this.socketError ??= describeSocketError(event);
    };
    this.welcomeTimer = setTimeout(() => {
      if (this.socket === socket) this.drop(4000, 'no welcome in time', 'connect-timeout');
    }, this.options.connectTimeoutMs);
  }

  private handleFrame(data: unknown): void {
    this.lastReceivedAt = Date.now();
    this.pingSentAt = undefined;
    const message = parseServerMessage(data);
    if (!message) return;
    if (message.type === 'welcome') {
      clearTimeout(this.welcomeTimer);
      this.isWelcomed = this.hasBeenWelcomed = true;
      this.lastFailure = undefined;
      this.startHeartbeat(this.options.heartbeatMs ?? message.heartbeatMs);
      this.hooks.welcome(message);
    } else if (message.type === 'reconnect') {
      this.handleDrain(message.retryAfterMs);
    } else {
      if (message.type === 'kicked' || (message.type === 'error' && message.id === undefined)) this.lastWord = message;
      this.hooks.message(message);
    }
  }

  /** The node is draining: stop using it, wait as asked, then connect to the next URL. */
  private handleDrain(retryAfterMs: number): void {
    if (this.isClosed) return;
    clearTimeout(this.reconnectTimer);
    this.backoff.reset();
    const delayMs = Math.max(0, retryAfterMs);
    this.isHonouringDrain = true;
    this.hooks.reconnecting({ attempt: 0, delayMs, reason: 'drain' });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.isHonouringDrain = false;
      if (!this.socket) {
        void this.open();
        return;
      }
      // The node closes with 1012 once it has sent what it still had for us: wait for that rather
      // than close first and lose it, but not for ever.
      this.drainCloseTimer = setTimeout(() => {
        this.drainCloseTimer = undefined;
        if (this.socket) this.drop(1000, 'drained', 'drain');
      }, DRAIN_CLOSE_WAIT_MS);
    }, delayMs);
  }

  private startHeartbeat(intervalMs: number): void {
    clearInterval(this.heartbeatTimer);
    if (!(intervalMs > 0)) return;
    const socket = this.socket;
    this.pingSentAt = undefined;
    this.heartbeatTimer = setInterval(
      () => {
        if (this.socket !== socket) return;
        const now = Date.now();
        if (this.pingSentAt !== undefined) {
          if (now - this.pingSentAt >= this.options.heartbeatTimeoutMs) this.drop(4002, 'heartbeat timeout', 'heartbeat');
        } else if (now - this.lastReceivedAt >= intervalMs) {
          this.pingSentAt = now;
          this.send(JSON.stringify({ type: 'ping' }));
        }
      },
      Math.max(50, Math.min(intervalMs, this.options.heartbeatTimeoutMs) / 2),
    );
  }

  private detach(): WebSocketLike | null {
    const socket = this.socket;
    this.socket = null;
    clearTimeout(this.welcomeTimer);
    clearInterval(this.heartbeatTimer);
    this.pingSentAt = undefined;
    return socket;
  }

  /** `isServerClose`: the code came from the node (the client's own drops use 4000–4002, which mean nothing final). */
  private handleClose(code: number, reason: string, why: ReconnectReason, isServerClose: boolean): void {
    if (!this.isWelcomed) {
      this.lastFailure = this.describeFailure(code);
      if (why === 'closed') why = 'connect-failed';
    }
    this.detach();
    if (this.drainCloseTimer !== undefined) {
      // The draining node closed as expected, after the wait it asked for: go to the next one now.
      clearTimeout(this.drainCloseTimer);
      this.drainCloseTimer = undefined;
      why = 'drain';
    }
    if (this.isClosed) return;
    const isDraining = this.reconnectTimer !== undefined && why !== 'drain';
    const isFinal = (isServerClose && FINAL_CLOSE_CODES.has(code)) || this.maxAttempts === 0;
    this.hooks.down({ code, reason, willReconnect: !isFinal });
    if (isFinal) {
      const text = `connection closed (${code}${reason ? `: ${reason}` : ''})`;
      this.close(code, text, this.explainClose(code, text));
    } else if (why === 'drain') {
      void this.open();
    } else if (!isDraining) {
      this.scheduleReconnect(why);
    }
    // else: a drain already scheduled the next socket
  }

  /** What is known about why the current socket ended before its `welcome`. */
  private describeFailure(closeCode: number): ConnectFailure {
    const word = this.lastWord;
    if (word?.type === 'error') return { message: `${word.code}: ${word.message}`, closeCode, code: word.code };
    if (closeCode === 4000) return { message: `no welcome within ${this.options.connectTimeoutMs} ms`, closeCode };
    if (this.socketError) return { ...this.socketError, closeCode };
    if (this.isUpgraded) return { message: `the node closed the connection before its welcome (${closeCode})`, closeCode };
    return {
      message: `could not connect (${closeCode}; a browser does not say why: nothing listening, an upgrade refused by HTTP status, TLS or the network)`,
      closeCode,
    };
  }

  /** The error a final close leaves the client with: the node's own explanation when it gave one. */
  private explainClose(code: number, text: string): SignalingError {
    const failure = this.lastFailure;
    if (!this.isWelcomed && failure) return new SignalingError('connect-failed', failure.message, undefined, failure);
    const word = this.lastWord;
    if (code === KICKED_CLOSE_CODE) {
      const room = word?.type === 'kicked' ? ` from ${word.room}` : '';
      const why = word?.type === 'kicked' && word.reason ? `: ${word.reason}` : '';
      return new SignalingError('kicked', `removed${room} by an operator${why}`);
    }
    if (word?.type === 'error') return new SignalingError(word.code, word.message);
    return new SignalingError('closed', text);
  }

  private scheduleReconnect(why: ReconnectReason): void {
    const isConnecting = !this.hasBeenWelcomed;
    const limit = isConnecting ? Math.min(this.maxAttempts, this.options.maxConnectAttempts - 1) : this.maxAttempts;
    if (this.backoff.attempt >= limit) {
      const attempts = this.backoff.attempt + 1;
      const failure = this.lastFailure;
      if (isConnecting && failure) {
        const text = `gave up after ${attempts} connection attempts: ${failure.message}`;
        this.close(failure.closeCode, text, new SignalingError('connect-failed', text, undefined, failure));
      } else {
        this.close(1006, `gave up after ${this.backoff.attempt} reconnect attempts`);
      }
      return;
    }
    const delayMs = this.backoff.next();
    // A failure is reported with the attempt it delayed; a connection that had its welcome has none.
    const failure = this.isWelcomed ? undefined : this.lastFailure;
    this.hooks.reconnecting({ attempt: this.backoff.attempt, delayMs, reason: why, ...(failure ? { failure } : {}) });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, delayMs);
  }
}
