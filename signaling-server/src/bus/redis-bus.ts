// RoomBus on Redis pub/sub with ioredis: one connection publishes, one subscribes (a subscribed
// connection can do nothing else). ioredis reconnects and resubscribes by itself after a Redis
// restart; publishing while disconnected fails at once instead of queueing, so callers can answer
// `unavailable` rather than hang.
//
// Publishes are batched per event-loop turn. The first message of a turn is written at once, as
// its own PUBLISH; what else the turn publishes to a channel goes out, once the turn's I/O is done,
// as one PUBLISH whose payload joins the messages with RECORD_SEPARATOR, and the PUBLISHes of all
// channels go out as one pipeline (one socket write). The receiver splits a payload before its
// handlers see it. Order per channel is kept: every message is written after the ones published
// before it, on one connection. Order across channels is not, and nothing relies on it.
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { BusHandler, RoomBus } from './bus.js';

/**
 * Joins the messages of one batch. A bus message is an envelope (rooms/envelope.ts): a header of
 * node ids, kind letters, participant ids and numbers, then a JSON.stringify output, which escapes
 * every control character; so a message never contains this one.
 */
export const RECORD_SEPARATOR = '\x1e';

/** A batch that grows past this many UTF-16 code units goes out as is; the next one starts. */
const MAX_BATCH_CHARS = 256 * 1024;

export interface RedisBusOptions {
  url: string;
  prefix: string;
  timeoutMs: number;
  log: Logger;
  onStatus?: (isUp: boolean) => void;
}

/** The messages one PUBLISH carries, and the promise every publish() of them got. */
interface Batch {
  channel: string;
  payload: string;
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class RedisBus implements RoomBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly handlers: BusHandler[] = [];
  private readonly channelPrefix: string;
  /** The batch still open for each channel this turn. */
  private readonly open = new Map<string, Batch>();
  /** Batches that were closed because they grew too big, oldest first; they go out before `open`. */
  private readonly closed: Batch[] = [];
  /** Set by the first publish of a turn (which goes out at once) until the flush at the turn's end. */
  private isFlushScheduled = false;
  private readonly flushNow = () => this.flush();

  private constructor(private readonly opts: RedisBusOptions) {
    const common: RedisOptions = {
      connectTimeout: opts.timeoutMs,
      commandTimeout: opts.timeoutMs,
      maxRetriesPerRequest: 1,
      // Back off to at most one attempt a second: Redis coming back is noticed within a second.
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
      lazyConnect: true,
    };
    this.pub = new Redis(opts.url, { ...common, enableOfflineQueue: false, connectionName: 'signaling-pub' });
    // The subscriber keeps its offline queue so SUBSCRIBE issued during an outage runs on reconnect.
    this.sub = new Redis(opts.url, { ...common, commandTimeout: undefined, connectionName: 'signaling-sub' });
    this.channelPrefix = `${opts.prefix}room:`;
    this.sub.on('message', (channel: string, payload: string) => this.receive(channel, payload));
    for (const [name, conn] of [['pub', this.pub], ['sub', this.sub]] as const) {
      conn.on('ready', () => {
        opts.log.info({ connection: name }, 'redis connected');
        opts.onStatus?.(this.isUp());
      });
      conn.on('close', () => opts.onStatus?.(this.isUp()));
      conn.on('error', (err: Error) => opts.log.warn({ connection: name, err: err.message }, 'redis error'));
    }
  }

  static async connect(opts: RedisBusOptions): Promise<RedisBus> {
    const bus = new RedisBus(opts);
    await Promise.all([bus.pub.connect(), bus.sub.connect()]);
    return bus;
  }

  /** Resolves when Redis acknowledged the PUBLISH that carried the message. */
  publish(room: string, payload: string): Promise<void> {
    if (this.pub.status !== 'ready') return Promise.reject(new Error('the redis publisher is not connected'));
    // A separator inside a message would split it in two on the other side: refuse it loudly.
    if (payload.includes(RECORD_SEPARATOR)) return Promise.reject(new Error('a bus message may not contain \\x1e'));
    const channel = this.channelPrefix + room;
    if (!this.isFlushScheduled) {
      // The first message of a turn goes out at once, as one command: at low rates batching would
      // only add work. Whatever follows it in this turn waits for the flush, after it.
      this.isFlushScheduled = true;
      setImmediate(this.flushNow);
      return this.pub.publish(channel, payload).then(ignore);
    }
    let batch = this.open.get(channel);
    if (batch && batch.payload.length + payload.length >= MAX_BATCH_CHARS) {
      this.closed.push(batch);
      batch = undefined;
    }
    if (batch) {
      batch.payload += RECORD_SEPARATOR + payload;
    } else {
      batch = newBatch(channel, payload);
      this.open.set(channel, batch);
    }
    return batch.promise;
  }

  private flush(): void {
    this.isFlushScheduled = false;
    const batches = this.closed.length > 0 ? [...this.closed.splice(0), ...this.open.values()] : [...this.open.values()];
    this.open.clear();
    if (batches.length === 0) return;
    if (batches.length === 1) {
      const [batch] = batches as [Batch];
      this.pub.publish(batch.channel, batch.payload).then(() => batch.resolve(), batch.reject);
      return;
    }
    const pipeline = this.pub.pipeline();
    for (const batch of batches) pipeline.publish(batch.channel, batch.payload);
    pipeline.exec().then(
      (results) => {
        batches.forEach((batch, i) => {
          const err = results?.[i]?.[0];
          if (err) batch.reject(err);
          else batch.resolve();
        });
      },
      (err: Error) => {
        for (const batch of batches) batch.reject(err);
      },
    );
  }

  private receive(channel: string, payload: string): void {
    const room = channel.slice(this.channelPrefix.length);
    let start = 0;
    for (;;) {
      const end = payload.indexOf(RECORD_SEPARATOR, start);
      const message = end < 0 ? (start === 0 ? payload : payload.slice(start)) : payload.slice(start, end);
      for (const handler of this.handlers) handler(room, message);
      if (end < 0) return;
      start = end + 1;
    }
  }

  async subscribe(room: string): Promise<void> {
    await this.sub.subscribe(this.channelPrefix + room);
  }

  async unsubscribe(room: string): Promise<void> {
    await this.sub.unsubscribe(this.channelPrefix + room);
  }

  onMessage(handler: BusHandler): void {
    this.handlers.push(handler);
  }

  isUp(): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready';
  }

  /** The publishing connection, for features that keep small amounts of data in Redis. */
  get client(): Redis {
    return this.pub;
  }

  async close(): Promise<void> {
    // What was published this turn still goes out (a stopping node's last handovers).
    if (this.isFlushScheduled) this.flush();
    this.pub.disconnect();
    this.sub.disconnect();
  }
}

const ignore = () => {};

function newBatch(channel: string, payload: string): Batch {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { channel, payload, promise, resolve, reject };
}
