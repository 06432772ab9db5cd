// The uWS app: WebSocket upgrades and frames, backpressure and liveness. It decodes every frame with
// the protocol schemas and hands typed messages to the rooms layer; it knows nothing of Postgres or
// Redis. The plain HTTP routes (health, metrics, the /v1 API, static files) are in http-routes.ts.
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { checkPortFree } from './port-check.js';

/** uWS's LIBUS_LISTEN_EXCLUSIVE_PORT: no SO_REUSEPORT. */
const EXCLUSIVE_PORT = 1;
type ListenWithOptions = (host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => void;
import type { Logger } from 'pino';
import type { TokenClaims, TokenVerifier } from '../auth/token-verifier.js';
import { AddressRateLimits, type AddressBuckets, type AddressRates, type Rate } from '../limits/address-buckets.js';
import type { ClientAddressResolver, ConnectionOrigin } from '../limits/client-address.js';
import { IpConnectionCounter } from '../limits/ip-connections.js';
import { jsonDepthExceeds } from '../limits/json-guard.js';
import { AbuseCounter, TokenBucket } from '../limits/token-bucket.js';
import type { Metrics } from '../metrics.js';
import { DecodeError, decodeClientMessage, encode } from '../protocol/messages.js';
import { ProtocolError } from '../protocol/errors.js';
import type { RoomService } from '../rooms/room-service.js';
import type { ClientLink, ConnectionRequest, Session } from '../rooms/session.js';
import { registerHttpRoutes, type ApiHandler } from './http-routes.js';
import type { TopicRelay } from '../rooms/topic-relay.js';
import type { StaticFiles } from './static-files.js';
import { YWebrtcEndpoint, type AdmittedConnection } from './ywebrtc-endpoint.js';
import type { Uws } from './uws.js';

export interface ServerOptions {
  uws: Uws;
  host: string;
  port: number;
  nodeId: string;
  idleTimeoutMs: number;
  maxMessageBytes: number;
  sendBufferBytes: number;
  rooms: RoomService;
  metrics: Metrics;
  log: Logger;
  staticFiles?: StaticFiles;
  /** Resolves true when this node should receive traffic. */
  isReady: () => Promise<boolean>;
  /** Answers the operator API under /v1/; absent, /v1/ answers 404. */
  api?: ApiHandler;
  /** Verifies `?token=` at connect time; null in anonymous mode. */
  verifier: TokenVerifier | null;
  /** Browser origins allowed to connect; undefined allows any. Clients that send no Origin are not browsers and pass. */
  allowedOrigins?: string[];
  maxConnectionsPerIp: number;
  maxJsonDepth: number;
  rateLimit: { perSec: number; burst: number; strikes: number; strikeWindowMs: number };
  /** Bytes per second one connection may send. */
  connectionBytes: Rate;
  /** Limits shared by all connections of one client address. */
  addressRates: AddressRates;
  /** Tells the client's address behind trusted proxies; per-address limits count by its limitKey. */
  clientAddress: ClientAddressResolver;
  /** With a join hook: the request headers it is told (besides the cookies). Null: no hook, nothing recorded. */
  joinHookHeaders: string[] | null;
  /** y-webrtc's signaling endpoint at `path`; absent, there is none. */
  ywebrtc?: { path: string; maxTopics: number; relay: TopicRelay };
}

interface Connection {
  isRefused: false;
  session: Session | null;
  isClosed: boolean;
  /** performance.now() of the last frame or pong from the client. */
  lastSeen: number;
  /** Set when this server closed the connection because the client went silent. */
  isSilenced: boolean;
  /** The client's address (behind a trusted proxy, the one it names) and the key limits count it under. */
  ip: string;
  addressKey: string;
  address: AddressBuckets;
  claims: TokenClaims | undefined;
  /** What the join hook is told about the upgrade request. */
  request: ConnectionRequest;
  /** Why the connect-time token was refused; the connection is closed with 1008 right after open. */
  authError: ProtocolError | undefined;
  bucket: TokenBucket;
  bytes: TokenBucket;
  strikes: AbuseCounter;
}

/**
 * An upgrade refused inside the WebSocket rather than by HTTP status, for browsers, which hide the
 * status of a failed upgrade (their page sees a bare 1006): the socket gets one `error` frame and
 * the close code, and never a session.
 */
interface RefusedUpgrade {
  isRefused: true;
  code: 'forbidden-origin' | 'rate-limited';
  message: string;
  closeCode: number;
}

type SocketData = Connection | RefusedUpgrade;

/** The refused socket's close: 1008 (policy) for an origin, 1013 (try again later) for a busy address. */
const REFUSAL_CLOSE_CODES = { 'forbidden-origin': 1008, 'rate-limited': 1013 } as const;

/** The per-address and per-connection refusals after the message rate, each with its own metric. */
type RateRefusal = 'byte-rate' | 'address-byte-rate' | 'write-rate' | 'bus-rate';

const textDecoder = new TextDecoder('utf-8', { fatal: true });
const TOO_LARGE_FACTOR = 4;
/** How long past the client's reconnect delay a draining node keeps reading its connection. */
const CLOSE_AFTER_RECONNECT_MS = 1000;
const CLOSE_FACTOR = 16;
/**
 * What a message costs in Redis beyond the client's frame: the envelope header and the frame's
 * re-encoding with the sender's id, rounded up. Charged so that a flood of tiny messages spends the
 * bus budget too.
 */
const BUS_OVERHEAD_BYTES = 128;

export class SignalingServer {
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | null = null;
  private readonly sockets = new Set<WebSocket<Connection>>();
  private readonly livenessTimer: NodeJS.Timeout;
  private readonly connectionsPerIp: IpConnectionCounter;
  private readonly addressLimits: AddressRateLimits;
  private readonly allowedOrigins: Set<string> | undefined;
  private readonly ywebrtc: YWebrtcEndpoint | undefined;
  /** While draining, new upgrades are refused. */
  isDraining = false;
  /** While this node's clients are being sent away because it cannot reach the bus, new upgrades are refused too. */
  isBusAway = false;

  constructor(private readonly opts: ServerOptions) {
    const { uws, metrics } = opts;
    // Liveness is ours rather than uWS's: one timer pings every socket each half idle period and
    // closes those silent for a whole one, so the close is known to be for silence (peer-left
    // reason "timeout") and not a network drop ("disconnected").
    const heartbeatMs = Math.round(opts.idleTimeoutMs / 2);
    this.livenessTimer = setInterval(() => {
      this.checkLiveness();
      this.addressLimits.sweep();
    }, heartbeatMs);
    this.livenessTimer.unref();
    this.connectionsPerIp = new IpConnectionCounter(opts.maxConnectionsPerIp);
    this.addressLimits = new AddressRateLimits(opts.addressRates);
    this.allowedOrigins = opts.allowedOrigins ? new Set(opts.allowedOrigins) : undefined;
    const refused = (reason: string) => metrics.dropped.labels(`upgrade-${reason}`).inc();
    const rateLimited = metrics.dropped.labels('rate-limit');
    const refusedFor = (reason: RateRefusal) => metrics.dropped.labels(reason);
    const refusals = {
      'byte-rate': refusedFor('byte-rate'),
      'address-byte-rate': refusedFor('address-byte-rate'),
      'write-rate': refusedFor('write-rate'),
      'bus-rate': refusedFor('bus-rate'),
    };
    /** Counts a refusal and a strike; true when the strikes say the connection must go (closed here). */
    const refuse = (ws: WebSocket<Connection>, conn: Connection, reason: RateRefusal | null): boolean => {
      (reason ? refusals[reason] : rateLimited).inc();
      if (!conn.strikes.strike()) return false;
      opts.log.warn({ ip: conn.ip, reason: reason ?? 'rate-limit' }, 'closing a connection that keeps exceeding its rate limit');
      ws.end(1008, 'rate limit exceeded repeatedly');
      return true;
    };
    const backpressureDropped = metrics.dropped.labels('backpressure');
    const received = new Map<string, ReturnType<typeof metrics.messagesReceived.labels>>();
    const countReceived = (type: string) => {
      let counter = received.get(type);
      if (!counter) received.set(type, (counter = metrics.messagesReceived.labels(type)));
      counter.inc();
    };
    this.app = uws.App();
    this.app.ws<SocketData>('/ws', {
      compression: uws.DISABLED,
      // Up to TOO_LARGE_FACTOR times the limit a frame is answered with `too-large`; up to
      // CLOSE_FACTOR times it closes with 1009; uWS drops anything larger before buffering it.
      maxPayloadLength: opts.maxMessageBytes * CLOSE_FACTOR,
      // A backstop only; checkLiveness() acts first.
      idleTimeout: Math.min(960, Math.ceil((opts.idleTimeoutMs * 2) / 1000)),
      sendPingsAutomatically: false,
      maxBackpressure: opts.sendBufferBytes,
      // A reader too slow to keep its buffer under the bound is closed, not buffered without end.
      closeOnBackpressureLimit: 1,

      upgrade: (res, req, context) => {
        // uWS's request object is valid only now: read everything before any await.
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const token = new URLSearchParams(req.getQuery() ?? '').get('token');
        // Every browser sends Origin with an upgrade and cannot read the HTTP status of a refusal:
        // it is refused inside the WebSocket instead; other clients keep the plain HTTP status.
        const refuseInside = (code: RefusedUpgrade['code'], message: string) => {
          const refusal: RefusedUpgrade = { isRefused: true, code, message, closeCode: REFUSAL_CLOSE_CODES[code] };
          res.upgrade<SocketData>(refusal, key, protocol, extensions, context);
        };
        const admitted = this.admit(res, req, refused, refuseInside);
        if (!admitted) return;
        const { ip, addressKey } = admitted;
        const { perSec, burst, strikes, strikeWindowMs } = opts.rateLimit;
        const conn: Connection = {
          isRefused: false,
          session: null,
          isClosed: false,
          lastSeen: performance.now(),
          isSilenced: false,
          ...admitted,
          claims: undefined,
          request: readRequest(req, ip, token, opts.joinHookHeaders),
          authError: undefined,
          bucket: new TokenBucket(perSec, burst),
          bytes: new TokenBucket(opts.connectionBytes.perSec, opts.connectionBytes.burst),
          strikes: new AbuseCounter(strikes, strikeWindowMs),
        };
        if (!token || !opts.verifier) return void res.upgrade(conn, key, protocol, extensions, context);
        let isAborted = false;
        res.onAborted(() => {
          isAborted = true;
          this.release(conn);
        });
        opts.verifier
          .verify(token)
          .then(
            (claims) => (conn.claims = claims),
            (err: unknown) =>
              (conn.authError = err instanceof ProtocolError ? err : new ProtocolError('unauthorized', 'invalid token')),
          )
          .finally(() => {
            if (!isAborted) res.cork(() => res.upgrade(conn, key, protocol, extensions, context));
          });
      },

      open: (socket) => {
        const data = socket.getUserData();
        if (data.isRefused) {
          socket.send(encode.error(undefined, data.code, data.message));
          return void socket.end(data.closeCode, data.message);
        }
        const ws = socket as WebSocket<Connection>;
        const conn = data;
        conn.session = opts.rooms.connect(new UwsLink(ws, conn, backpressureDropped), conn.claims, conn.request);
        this.sockets.add(ws);
        metrics.connections.set(this.sockets.size);
        ws.send(encode.welcome(opts.nodeId, heartbeatMs));
        if (conn.authError) {
          opts.rooms.replyError(conn.session, undefined, conn.authError);
          ws.end(1008, 'unauthorized');
        }
      },

      message: (socket, message, isBinary) => {
        const conn = socket.getUserData();
        if (conn.isRefused) return;
        const ws = socket as WebSocket<Connection>;
        const session = conn.session!;
        conn.lastSeen = performance.now();
        // Cheapest first, and all before parsing: messages, then bytes of this connection, then
        // bytes of every connection of this address.
        let refusal: RateRefusal | null | undefined;
        if (!conn.bucket.take()) refusal = null;
        else if (!conn.bytes.take(message.byteLength)) refusal = 'byte-rate';
        else if (!conn.address.bytes.take(message.byteLength)) refusal = 'address-byte-rate';
        if (refusal !== undefined) {
          if (refuse(ws, conn, refusal)) return;
          const what = refusal === null ? 'too many messages' : 'too many bytes';
          return opts.rooms.replyError(session, undefined, new ProtocolError('rate-limited', `${what}; this one was dropped`));
        }
        if (isBinary) {
          countReceived('binary');
          return opts.rooms.replyError(session, undefined, new ProtocolError('bad-request', 'binary frames are not supported'));
        }
        if (message.byteLength > opts.maxMessageBytes) {
          countReceived('too-large');
          if (message.byteLength > opts.maxMessageBytes * TOO_LARGE_FACTOR) return ws.end(1009, 'frame too large');
          return opts.rooms.replyError(
            session,
            undefined,
            new ProtocolError('too-large', `frame is larger than ${opts.maxMessageBytes} bytes`),
          );
        }
        let text: string;
        try {
          text = textDecoder.decode(message);
        } catch {
          countReceived('invalid');
          return opts.rooms.replyError(session, undefined, new ProtocolError('bad-request', 'frame is not valid UTF-8'));
        }
        if (jsonDepthExceeds(text, opts.maxJsonDepth)) {
          countReceived('invalid');
          return opts.rooms.replyError(
            session,
            undefined,
            new ProtocolError('bad-request', `JSON nested deeper than ${opts.maxJsonDepth}`),
          );
        }
        let msg;
        try {
          msg = decodeClientMessage(text);
        } catch (err) {
          countReceived('invalid');
          const requestId = err instanceof DecodeError ? err.requestId : undefined;
          return opts.rooms.replyError(session, requestId, err);
        }
        countReceived(msg.type);
        // What a message costs beyond its frame: joins and state writes a database transaction,
        // signals, broadcasts and state writes their bytes in Redis (at most; a signal to a local
        // peer never reaches it).
        const isWrite = msg.type === 'join' || msg.type === 'state';
        const isBus = msg.type === 'signal' || msg.type === 'broadcast' || msg.type === 'state';
        if (isWrite && !conn.address.writes.take()) refusal = 'write-rate';
        else if (isBus && !conn.address.busBytes.take(message.byteLength + BUS_OVERHEAD_BYTES)) refusal = 'bus-rate';
        if (refusal !== undefined) {
          if (refuse(ws, conn, refusal)) return;
          const what = refusal === 'write-rate' ? 'too many joins and state writes' : 'too many bytes for the bus';
          return opts.rooms.replyError(
            session,
            msg.id,
            new ProtocolError('rate-limited', `${what} from this address; this one was dropped`),
          );
        }
        opts.rooms.handle(session, msg);
      },

      pong: (ws) => {
        const conn = ws.getUserData();
        if (!conn.isRefused) conn.lastSeen = performance.now();
      },

      close: (socket) => {
        const conn = socket.getUserData();
        if (conn.isRefused) return;
        const ws = socket as WebSocket<Connection>;
        conn.isClosed = true;
        this.release(conn);
        this.sockets.delete(ws);
        metrics.connections.set(this.sockets.size);
        if (conn.session) opts.rooms.closeSession(conn.session, conn.isSilenced ? 'timeout' : 'disconnected');
      },
    });

    if (opts.ywebrtc) {
      this.ywebrtc = new YWebrtcEndpoint({
        app: this.app,
        uws,
        path: opts.ywebrtc.path,
        idleTimeoutMs: opts.idleTimeoutMs,
        maxMessageBytes: opts.maxMessageBytes,
        sendBufferBytes: opts.sendBufferBytes,
        maxJsonDepth: opts.maxJsonDepth,
        maxTopics: opts.ywebrtc.maxTopics,
        rateLimit: opts.rateLimit,
        connectionBytes: opts.connectionBytes,
        relay: opts.ywebrtc.relay,
        metrics,
        log: opts.log,
        admit: (res, req, refusedFor) => this.admit(res, req, refusedFor),
        release: (admitted) => this.release(admitted),
      });
    }

    registerHttpRoutes(this.app, {
      metrics,
      log: opts.log,
      staticFiles: opts.staticFiles,
      isReady: opts.isReady,
      api: opts.api,
      maxBodyBytes: opts.maxMessageBytes,
    });
  }

  /**
   * The checks every upgrade passes, on any endpoint: not draining, the bus reachable, an allowed
   * origin, a free slot in the address's connection budget (taken here; pair with release()).
   * Null once a refusal was answered. Reads the request, so it runs before any await.
   */
  private admit(
    res: HttpResponse,
    req: HttpRequest,
    refused: (reason: string) => void,
    refuseInside?: (code: RefusedUpgrade['code'], message: string) => void,
  ): AdmittedConnection | null {
    const { clientAddress } = this.opts;
    const origin = req.getHeader('origin');
    const ip = clientAddress.resolve(readOrigin(res, req, clientAddress));
    const addressKey = clientAddress.limitKey(ip);
    const refuse = (status: string, body: string, reason: string, code?: RefusedUpgrade['code']): null => {
      refused(reason);
      if (code && refuseInside && origin !== '') refuseInside(code, body);
      else res.writeStatus(status).end(body);
      return null;
    };
    if (this.isDraining) return refuse('503 Service Unavailable', 'draining', 'draining');
    if (this.isBusAway) return refuse('503 Service Unavailable', 'this node cannot reach the message bus', 'bus-away');
    if (this.allowedOrigins && origin !== '' && !this.allowedOrigins.has(origin)) {
      return refuse('403 Forbidden', 'origin not allowed', 'origin', 'forbidden-origin');
    }
    if (!this.connectionsPerIp.tryAcquire(addressKey)) {
      return refuse('429 Too Many Requests', 'too many connections from this address', 'ip-limit', 'rate-limited');
    }
    return { ip, addressKey, address: this.addressLimits.acquire(addressKey) };
  }

  private release(admitted: AdmittedConnection): void {
    this.connectionsPerIp.release(admitted.addressKey);
    this.addressLimits.release(admitted.address);
  }

  private checkLiveness(): void {
    const silentSince = performance.now() - this.opts.idleTimeoutMs;
    for (const ws of this.sockets) {
      const conn = ws.getUserData();
      if (conn.lastSeen < silentSince) {
        conn.isSilenced = true;
        ws.close();
      } else {
        ws.ping();
      }
    }
  }

  /**
   * Starts listening, with the port to itself: uWS's default shares it (SO_REUSEPORT) with any
   * other node listening there, which then splits the traffic. Resolves with the port (useful when
   * configured as 0).
   */
  listen(): Promise<number> {
    const { host, port } = this.opts;
    return new Promise((resolve, reject) => {
      // The typings lack the (host, port, options, cb) form the native binary and the fallback take.
      const listen = this.app.listen.bind(this.app) as unknown as ListenWithOptions;
      listen(host, port, EXCLUSIVE_PORT, (socket) => {
        if (!socket) {
          // uWS says no more than false: the probe finds out why.
          return void checkPortFree(host, port).then(
            () => reject(new Error('uWebSockets.js refused to listen')),
            (err: Error) => reject(err),
          );
        }
        this.listenSocket = socket;
        resolve(this.opts.uws.us_socket_local_port(socket));
      });
    });
  }

  /** Stops accepting connections; open ones are untouched. */
  stopListening(): void {
    if (this.listenSocket) this.opts.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    clearInterval(this.livenessTimer);
  }

  /** Closes every connection with the given code (1001 on shutdown). */
  closeAll(code: number, reason: string): void {
    for (const ws of [...this.sockets]) ws.end(code, reason);
    this.ywebrtc?.closeAll(code, reason);
  }

  /**
   * Tells every client to reconnect elsewhere and closes it with 1012, in waves spread over
   * `spreadMs` so the other nodes are not hit all at once; each client also waits a random
   * 0..jitterMs before reconnecting. Resolves when the last connection has closed.
   */
  async drainConnections(spreadMs: number, jitterMs: number): Promise<void> {
    this.isDraining = true;
    // y-webrtc's client reconnects by itself within a few seconds and its topics hold no state: no waves.
    this.ywebrtc?.closeAll(1012, 'draining');
    const waveMs = 100;
    const waves = Math.max(1, Math.floor(spreadMs / waveMs));
    const order = [...this.sockets].sort(() => Math.random() - 0.5);
    const perWave = Math.ceil(order.length / waves);
    for (let i = 0; i < order.length; i += perWave) {
      for (const ws of order.slice(i, i + perWave)) this.sendAway(ws, jitterMs, 'draining');
      if (i + perWave < order.length) await new Promise((resolve) => setTimeout(resolve, waveMs));
    }
    while (this.sockets.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /**
   * Tells every client at once to reconnect elsewhere and closes it with 1012: this node cannot
   * reach the bus, and every moment a client stays its sends fail. No waves: the other nodes take
   * resumes, which are cheap next to a cluster-wide rolling restart.
   */
  sendAllAway(jitterMs: number): void {
    for (const ws of [...this.sockets]) this.sendAway(ws, jitterMs, 'bus unreachable');
    this.ywebrtc?.closeAll(1012, 'bus unreachable');
  }

  private sendAway(ws: WebSocket<Connection>, jitterMs: number, reason: string): void {
    const conn = ws.getUserData();
    if (conn.isClosed) return;
    const retryAfterMs = Math.round(Math.random() * jitterMs);
    ws.send(encode.reconnect(retryAfterMs));
    // Messages the client sent before it read `reconnect` are still on their way, and a busy
    // client reads late: keep reading until a while after it was told to leave, then close.
    // A client that closes first is fine too.
    setTimeout(() => conn.isClosed || ws.end(1012, reason), retryAfterMs + CLOSE_AFTER_RECONNECT_MS);
  }

  /** Open WebSockets on every endpoint: the load /v1/cluster and `signalctl status` show. */
  get connectionCount(): number {
    return this.sockets.size + (this.ywebrtc?.connectionCount ?? 0);
  }

  subscriberCount(topic: string): number {
    return this.app.numSubscribers(topic);
  }

  publish(topic: string, frame: string): void {
    this.app.publish(topic, frame, false, false);
  }
}

/**
 * What the upgrade request says about where it came from. The forwarded-for header is collected
 * (every line of it: a client may send its own before the proxy's) only when a proxy is trusted.
 */
function readOrigin(res: HttpResponse, req: HttpRequest, resolver: ClientAddressResolver): ConnectionOrigin {
  const origin: ConnectionOrigin = {
    peer: Buffer.from(res.getRemoteAddressAsText()).toString(),
    proxied: resolver.hasTrustedProxies ? Buffer.from(res.getProxiedRemoteAddressAsText()).toString() : '',
    forwardedFor: [],
  };
  const header = resolver.forwardedHeader;
  if (header !== null) req.forEach((key, value) => key === header && origin.forwardedFor.push(value));
  return origin;
}

/** The upgrade request as the join hook sees it; headers and cookies only when there is a hook. */
function readRequest(req: HttpRequest, address: string, token: string | null, hookHeaders: string[] | null): ConnectionRequest {
  const request: ConnectionRequest = { address, token, cookies: {}, headers: {} };
  if (hookHeaders === null) return request;
  for (const name of hookHeaders) {
    const value = req.getHeader(name);
    if (value !== '') request.headers[name] = value;
  }
  for (const pair of req.getHeader('cookie').split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0) request.cookies[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return request;
}

/**
 * The rooms layer's handle on one socket. A class rather than an object of closures: a node holds
 * one per connection, and methods on a prototype cost an idle connection nothing.
 */
class UwsLink implements ClientLink {
  constructor(
    private readonly ws: WebSocket<Connection>,
    private readonly conn: Connection,
    private readonly dropped: { inc(): void },
  ) {}

  send(frame: string): void {
    if (this.conn.isClosed) return;
    // 2 = dropped: the socket is past its send buffer bound and uWS is closing it.
    if (this.ws.send(frame, false, false) === 2) this.dropped.inc();
  }

  subscribe(topic: string): void {
    if (!this.conn.isClosed) this.ws.subscribe(topic);
  }

  unsubscribe(topic: string): void {
    if (!this.conn.isClosed) this.ws.unsubscribe(topic);
  }

  publish(topic: string, frame: string): void {
    if (!this.conn.isClosed) this.ws.publish(topic, frame, false, false);
  }

  close(code: number, reason: string): void {
    if (!this.conn.isClosed) this.ws.end(code, reason);
  }
}
