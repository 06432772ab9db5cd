// RoomBus on Redis pub/sub with ioredis: one connection publishes, one subscribes (a subscribed
// connection can do nothing else). ioredis reconnects and resubscribes by itself after a Redis
// restart; publishing while disconnected fails at once instead of queueing, so callers can answer
// `unavailable` rather than hang.
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { BusHandler, RoomBus } from './bus.js';

export interface RedisBusOptions {
  url: string;
  prefix: string;
  timeoutMs: number;
  log: Logger;
  onStatus?: (isUp: boolean) => void;
}

export class RedisBus implements RoomBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly handlers: BusHandler[] = [];
  private readonly channelPrefix: string;

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
    this.sub.on('message', (channel: string, payload: string) => {
      const room = channel.slice(this.channelPrefix.length);
      for (const handler of this.handlers) handler(room, payload);
    });
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

  async publish(room: string, payload: string): Promise<void> {
    await this.pub.publish(this.channelPrefix + room, payload);
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
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
