// y-webrtc's signaling server on a node: its WebSocket endpoint, at a path of its own, with the
// limits of /ws (the address's connection budget and byte rates, the connection's message and byte
// rates, the frame size). Topics travel through the TopicRelay, so a publish reaches subscribers
// on every node. Bad frames are ignored, as y-webrtc's server does with what it does not know,
// and counted; a connection that keeps exceeding its rates is closed (1008).
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { AddressBuckets, Rate } from '../limits/address-buckets.js';
import { jsonDepthExceeds } from '../limits/json-guard.js';
import { AbuseCounter, TokenBucket } from '../limits/token-bucket.js';
import type { Metrics } from '../metrics.js';
import { PONG_FRAME, decodeYWebrtcMessage } from '../protocol/ywebrtc-messages.js';
import { localTopicOf, type TopicRelay } from '../rooms/topic-relay.js';
import type { Uws } from './uws.js';

const PROTOCOL = 'y-webrtc';
/** Frames up to this many times the limit are read (and refused); uWS drops larger ones itself. */
const CLOSE_FACTOR = 16;

/** A connection let in by the node's upgrade checks, holding a slot of its address's budget. */
export interface AdmittedConnection {
  ip: string;
  addressKey: string;
  address: AddressBuckets;
}

export interface YWebrtcEndpointOptions {
  app: TemplatedApp;
  uws: Uws;
  path: string;
  idleTimeoutMs: number;
  maxMessageBytes: number;
  sendBufferBytes: number;
  maxJsonDepth: number;
  /** Topics one connection may subscribe to at once. */
  maxTopics: number;
  rateLimit: { perSec: number; burst: number; strikes: number; strikeWindowMs: number };
  connectionBytes: Rate;
  relay: TopicRelay;
  metrics: Metrics;
  log: Logger;
  /**
   * The node's upgrade checks (draining, origin, the address's connection budget): the admitted
   * connection, or null once the refusal was answered (counted under `upgrade-<reason>`).
   */
  admit: (res: HttpResponse, req: HttpRequest, refused: (reason: string) => void) => AdmittedConnection | null;
  release: (admitted: AdmittedConnection) => void;
}

interface Connection extends AdmittedConnection {
  topics: Set<string>;
  /** Subscriptions in flight; the connection's publishes wait for them. */
  subscribing: Promise<void> | null;
  bucket: TokenBucket;
  bytes: TokenBucket;
  strikes: AbuseCounter;
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

export class YWebrtcEndpoint {
  private readonly sockets = new Set<WebSocket<Connection>>();

  constructor(private readonly opts: YWebrtcEndpointOptions) {
    const { metrics, relay } = opts;
    const log = opts.log.child({ protocol: PROTOCOL });
    const dropped = (reason: string) => metrics.compatDropped.labels(PROTOCOL, reason).inc();
    const received = (type: string) => metrics.compatMessagesReceived.labels(PROTOCOL, type).inc();
    const connections = metrics.compatConnections.labels(PROTOCOL);
    /** Counts a refusal and a strike; closes the connection (1008) when it has had too many. */
    const refuse = (ws: WebSocket<Connection>, conn: Connection, reason: string): void => {
      dropped(reason);
      if (!conn.strikes.strike()) return;
      log.warn({ ip: conn.ip, reason }, 'closing a connection that keeps exceeding its rate limit');
      ws.end(1008, 'rate limit exceeded repeatedly');
    };
    const publish = (topic: string, frame: string) =>
      relay.publish(topic, frame).catch((err: unknown) => {
        dropped('bus-unavailable');
        log.debug({ err }, 'a publish to a topic failed');
      });

    opts.app.ws<Connection>(opts.path, {
      compression: opts.uws.DISABLED,
      maxPayloadLength: opts.maxMessageBytes * CLOSE_FACTOR,
      // y-webrtc's server pings and closes a connection that did not answer; uWS does the same.
      idleTimeout: Math.min(960, Math.max(8, Math.ceil(opts.idleTimeoutMs / 1000))),
      sendPingsAutomatically: true,
      maxBackpressure: opts.sendBufferBytes,
      closeOnBackpressureLimit: 1,

      upgrade: (res, req, context) => {
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const admitted = opts.admit(res, req, (reason) => dropped(`upgrade-${reason}`));
        if (!admitted) return;
        const { perSec, burst, strikes, strikeWindowMs } = opts.rateLimit;
        const conn: Connection = {
          ...admitted,
          topics: new Set(),
          subscribing: null,
          bucket: new TokenBucket(perSec, burst),
          bytes: new TokenBucket(opts.connectionBytes.perSec, opts.connectionBytes.burst),
          strikes: new AbuseCounter(strikes, strikeWindowMs),
        };
        res.upgrade(conn, key, protocol, extensions, context);
      },

      open: (ws) => {
        this.sockets.add(ws);
        connections.set(this.sockets.size);
      },

      message: (ws, message) => {
        const conn = ws.getUserData();
        // Cheapest first, as on /ws: messages, bytes of this connection, bytes of its address.
        const refusal = !conn.bucket.take()
          ? 'rate-limit'
          : !conn.bytes.take(message.byteLength)
            ? 'byte-rate'
            : !conn.address.bytes.take(message.byteLength)
              ? 'address-byte-rate'
              : null;
        if (refusal) return refuse(ws, conn, refusal);
        if (message.byteLength > opts.maxMessageBytes) {
          received('too-large');
          return ws.end(1009, 'frame too large');
        }
        let text: string;
        let value: unknown;
        try {
          text = textDecoder.decode(message);
          if (jsonDepthExceeds(text, opts.maxJsonDepth)) return received('invalid');
          value = JSON.parse(text);
        } catch {
          return received('invalid');
        }
        const msg = decodeYWebrtcMessage(value);
        if (typeof msg === 'string') return received(msg);
        received(msg.type);
        switch (msg.type) {
          case 'subscribe':
            return this.subscribe(ws, conn, msg.topics);
          case 'unsubscribe':
            for (const topic of msg.topics) this.unsubscribe(ws, conn, topic);
            return;
          case 'publish': {
            if (!conn.address.busBytes.take(message.byteLength)) return refuse(ws, conn, 'bus-rate');
            // The frame goes on as the client sent it: y-webrtc's server adds `clients`, which no client reads.
            if (conn.subscribing) void conn.subscribing.then(() => publish(msg.topic, text));
            else void publish(msg.topic, text);
            return;
          }
          case 'ping':
            ws.send(PONG_FRAME, false, false);
        }
      },

      close: (ws) => {
        const conn = ws.getUserData();
        for (const topic of conn.topics) relay.unsubscribe(topic);
        conn.topics.clear();
        opts.release(conn);
        this.sockets.delete(ws);
        connections.set(this.sockets.size);
      },
    });
  }

  private subscribe(ws: WebSocket<Connection>, conn: Connection, topics: string[]): void {
    const subscribed: Promise<void>[] = [];
    for (const topic of topics) {
      if (conn.topics.has(topic)) continue;
      if (conn.topics.size >= this.opts.maxTopics) {
        this.opts.metrics.compatDropped.labels(PROTOCOL, 'topic-limit').inc();
        continue;
      }
      conn.topics.add(topic);
      ws.subscribe(localTopicOf(topic));
      subscribed.push(this.opts.relay.subscribe(topic));
    }
    if (subscribed.length === 0) return;
    const all = Promise.all([conn.subscribing, ...subscribed]).then(() => {
      if (conn.subscribing === all) conn.subscribing = null;
    });
    conn.subscribing = all;
  }

  private unsubscribe(ws: WebSocket<Connection>, conn: Connection, topic: string): void {
    if (!conn.topics.delete(topic)) return;
    ws.unsubscribe(localTopicOf(topic));
    this.opts.relay.unsubscribe(topic);
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Closes every connection (y-webrtc's client reconnects by itself, to any node). */
  closeAll(code: number, reason: string): void {
    for (const ws of [...this.sockets]) ws.end(code, reason);
  }
}
