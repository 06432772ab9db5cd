// Sharded pub/sub on a Redis Cluster: each channel is SSUBSCRIBEd on the master that owns its slot,
// over one subscriber connection per such master. The slot map is the publishing Cluster client's.
//
// Ours rather than ioredis's `shardedSubscribers`: that one restores subscriptions fire-and-forget
// (a failed SSUBSCRIBE is only a debug line, `subscribersReady` comes before the replies), so its
// user cannot tell when a lost subscription is back, the moment the bus must read the logs back
// from. Here a lost connection or a channel whose slot moved to another master says so (onLost), and
// restore() resolves only once every channel is subscribed again where its slot now lives.
//
// Each subscriber connection asks its server's run id first, so a channel subscribed again on the
// same address but on a new redis-server process is known: that master restarted, and whatever it
// held for the channel's room (the log, the positions) went with it unless it saved them.
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { keySlot } from './key-slot.js';

export interface ShardedSubscriberOptions {
  /** The Cluster client whose slot map says which master owns a slot. */
  cluster: Cluster;
  /** For every subscriber connection (timeouts, name). */
  redisOptions: RedisOptions;
  timeoutMs: number;
  log: Logger;
  onMessage: (channel: string, payload: string) => void;
  /** Each subscriber connection as it is made (to probe it; one that ends is let go). */
  onConnection?: (redis: Redis) => void;
  /** Some channels may be unsubscribed now: call restore() (until it succeeds). */
  onLost: () => void;
}

export class ShardedSubscriber {
  /** Each channel, with the master (`host:port`) it is subscribed on; '' while not subscribed. */
  private readonly channels = new Map<string, string>();
  private readonly connections = new Map<string, Promise<Redis>>();
  /** The run id of the server each connection was made to. */
  private readonly runIds = new WeakMap<Redis, string>();
  /** Each channel, with `<master> <run id>` of the server it was last subscribed on; kept across a loss. */
  private readonly servers = new Map<string, string>();
  /** Channels subscribed again on a restarted master since takeRestarted() last ran. */
  private restarted = new Set<string>();
  private isClosing = false;
  /** False from a loss until a restore succeeds: a loss is logged once, not at every retry. */
  private isRestored = true;
  /** Set by a loss, cleared when restore() starts: a loss during a restore asks for another. */
  isLost = false;

  constructor(private readonly opts: ShardedSubscriberOptions) {
    // Slots move without any connection dropping (resharding, a failover seen first elsewhere):
    // after each refresh of the slot map, a channel left on the wrong master counts as lost.
    opts.cluster.on('refresh', () => {
      for (const [channel, node] of this.channels) {
        if (node !== '' && this.owner(channel) !== node) return this.lose(`the slot of ${channel} moved`);
      }
    });
  }

  async add(channel: string): Promise<void> {
    this.channels.set(channel, '');
    const node = this.owner(channel);
    const connection = await this.connection(node);
    await withTimeout(connection.ssubscribe(channel), this.opts.timeoutMs, 'ssubscribe');
    if (this.channels.has(channel)) this.subscribed(channel, node, connection);
  }

  async remove(channel: string): Promise<void> {
    const node = this.channels.get(channel);
    this.channels.delete(channel);
    this.servers.delete(channel);
    this.restarted.delete(channel);
    const connection = node ? await this.connections.get(node)?.catch(() => undefined) : undefined;
    if (connection?.status === 'ready') await connection.sunsubscribe(channel);
  }

  /** Refreshes the slot map, then subscribes every channel on the master that owns its slot now. */
  async restore(): Promise<void> {
    this.isLost = false;
    await new Promise<void>((resolve, reject) => this.opts.cluster.refreshSlotsCache((err) => (err ? reject(err) : resolve())));
    const owners = new Map<string, string>();
    for (const channel of this.channels.keys()) owners.set(channel, this.owner(channel));
    const needed = new Set(owners.values());
    // A master that owns none of our channels any more (it was demoted, its slots moved) is let go.
    for (const node of this.connections.keys()) if (!needed.has(node)) this.drop(node);
    await Promise.all(
      [...owners].map(async ([channel, node]) => {
        const connection = await this.connection(node);
        await withTimeout(connection.ssubscribe(channel), this.opts.timeoutMs, 'ssubscribe');
        if (this.channels.has(channel)) this.subscribed(channel, node, connection);
      }),
    );
    this.isRestored = true;
  }

  /**
   * The channels subscribed again, since the last call, on a master at the address they were on
   * before but a new server process (restarted): what it held for them may be gone. A failover or
   * a slot move puts a channel on another address, whose data was replicated or migrated.
   */
  takeRestarted(): string[] {
    const channels = [...this.restarted];
    this.restarted = new Set();
    return channels;
  }

  /** Every channel is subscribed on a connection that is up. */
  isUp(): boolean {
    return !this.isLost && [...this.channels.values()].every((node) => node !== '');
  }

  async close(): Promise<void> {
    this.isClosing = true;
    for (const node of [...this.connections.keys()]) this.drop(node);
  }

  /** Records where the channel is subscribed now: the master, and the server process behind it. */
  private subscribed(channel: string, node: string, connection: Redis): void {
    this.channels.set(channel, node);
    const server = `${node} ${this.runIds.get(connection) ?? ''}`;
    const before = this.servers.get(channel);
    if (before !== undefined && before !== server && before.startsWith(`${node} `)) this.restarted.add(channel);
    this.servers.set(channel, server);
  }

  private owner(channel: string): string {
    const node = this.opts.cluster.slots[keySlot(channel)]?.[0];
    if (!node) throw new Error(`no master known for the slot of ${channel}`);
    return node;
  }

  private lose(why: string): void {
    if (this.isClosing || this.isLost) return;
    if (this.isRestored) this.opts.log.warn({ why }, 'sharded subscription lost; restoring');
    this.isRestored = false;
    this.isLost = true;
    this.opts.onLost();
  }

  /** The subscriber connection to a master, made on first use; a lost one is never reconnected. */
  private connection(node: string): Promise<Redis> {
    let connection = this.connections.get(node);
    if (connection) return connection;
    const colon = node.lastIndexOf(':');
    const redis = new Redis({
      ...this.opts.redisOptions,
      host: node.slice(0, colon),
      port: Number(node.slice(colon + 1)),
      lazyConnect: true,
      // A dropped connection is not retried: restore() asks the slot map where to connect now.
      retryStrategy: () => null,
    });
    redis.on('smessage', this.opts.onMessage);
    this.opts.onConnection?.(redis);
    // Losing the connection is logged once (lose()); its errors while a master is down are noise.
    redis.on('error', (err: Error) => this.opts.log.debug({ connection: `ssub ${node}`, err }, 'redis error'));
    connection = redis
      .connect()
      .then(() => withTimeout(serverRunId(redis), this.opts.timeoutMs, 'info'))
      .then(
        (runId) => {
          this.runIds.set(redis, runId);
          return redis;
        },
        (err: Error) => {
          if (this.connections.get(node) === connection) this.connections.delete(node);
          redis.disconnect();
          throw err;
        },
      );
    this.connections.set(node, connection);
    redis.once('close', () => {
      if (this.connections.get(node) !== connection) return;
      this.connections.delete(node);
      for (const [channel, on] of this.channels) if (on === node) this.channels.set(channel, '');
      this.lose(`the connection to ${node} closed`);
    });
    return connection;
  }

  private drop(node: string): void {
    const connection = this.connections.get(node);
    this.connections.delete(node);
    void connection?.then(
      (redis) => redis.disconnect(),
      () => {},
    );
  }
}

/** The server's run id: new each time redis-server starts. */
export async function serverRunId(redis: Redis): Promise<string> {
  return /^run_id:(\w+)/m.exec(await redis.info('server'))?.[1] ?? 'unknown';
}

export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis ${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
