// A second heartbeat, through Redis, beside the one in Postgres (cluster/heartbeat.ts): a node cut
// off from Postgres alone is still heard here, so the reaper does not take "cannot reach
// Postgres" for "dead" and remove its participants while they are connected. One sorted set, each
// node scored with Redis's own clock when it last beat (no clock of a node is compared with
// another's); on a Redis Cluster it is one key, so one slot.
import type { Cluster, Redis, Result } from 'ioredis';

export interface NodeBeats {
  /** Records that this node is alive now. */
  beat(nodeId: string): Promise<void>;
  /** The nodes that beat within the last `withinMs`. */
  aliveWithin(withinMs: number): Promise<string[]>;
}

/** Beats older than this are dropped from the set as it is written: a day of a node long gone. */
const FORGET_AFTER_MS = 24 * 3600_000;

// KEYS: the set. ARGV: the node, how old a beat may get before it is dropped (ms).
const BEAT_SCRIPT = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now
`;

// KEYS: the set. ARGV: how recent a beat must be (ms).
const ALIVE_SCRIPT = `#!lua flags=no-writes
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    nodeBeat(key: string, nodeId: string, forgetAfterMs: number): Result<number, Context>;
    nodesAlive(key: string, withinMs: number): Result<string[], Context>;
  }
}

export class RedisNodeBeats implements NodeBeats {
  private readonly key: string;

  constructor(
    private readonly redis: Redis | Cluster,
    prefix: string,
  ) {
    this.key = `${prefix}nodes:beats`;
    redis.defineCommand('nodeBeat', { numberOfKeys: 1, lua: BEAT_SCRIPT });
    redis.defineCommand('nodesAlive', { numberOfKeys: 1, lua: ALIVE_SCRIPT });
  }

  async beat(nodeId: string): Promise<void> {
    await this.redis.nodeBeat(this.key, nodeId, FORGET_AFTER_MS);
  }

  aliveWithin(withinMs: number): Promise<string[]> {
    return this.redis.nodesAlive(this.key, withinMs);
  }
}
