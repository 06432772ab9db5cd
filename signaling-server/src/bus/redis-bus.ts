// RoomBus on Redis: each room has a log (a stream, kept for the retention), a pub/sub channel that
// every subscribed node listens on, and one channel per node for the messages routed to that node
// alone (a signal goes only to the node that holds its addressee, see Route). A publish appends to
// the log and publishes, in one script, so every published message carries its own position and
// the position of the message before it that was routed to the same node. A subscriber that sees a
// message whose predecessor it has not seen (its connection dropped, Redis cut its output buffer)
// reads the missing ones back from the log before going on, and after every reconnect it reads what
// was logged while it was away.
//
// Both channels of a room and all its keys share the hash tag {r:<room>}, so on a Redis Cluster
// they live in one slot: one script can write them all, and one subscriber connection (the slot's
// shard) receives both channels in the order the script published them. One connection publishes and reads, one subscribes (a subscribed
// connection can do nothing else); publishing while disconnected fails at once instead of queueing,
// so callers can answer `unavailable` rather than hang.
//
// Publishes are batched per event-loop turn. What a turn publishes to a room goes out, once the
// turn's I/O is done, as one script call that logs each message and publishes them together,
// joined with RECORD_SEPARATOR; the calls of all rooms go out as one pipeline (one socket write). Order per room is kept: every message is written
// after the ones published before it, on one connection.
//
// On a Redis Cluster the commands go through ioredis's Cluster client, the channels are shard
// channels (SSUBSCRIBE/SPUBLISH), subscribed on the master that owns the room's slot
// (sharded-subscriber.ts), and the batches of a turn go out as one pipeline per slot. A failover is
// not a restart: the promoted replica holds the logs, so after every lost subscription each room is
// subscribed again and read back, and holes the failover left are found as any other (the first
// entry read back does not follow the position asked for). A master that restarts in place, with
// no replica to take over, is a restart: its rooms are healed as on one Redis. With waitReplicas
// each pipeline ends with WAIT, so a publish resolves only once a replica has it.
//
// Every connection (the publisher, the subscriber; on a cluster each node connection and each shard
// subscriber) is sent a PING each probe interval, and one that misses its deadline is destroyed
// (connection-probe.ts): a flow the network dropped silently is then a reconnect like any other.
// On a cluster the bus counts as down while its publisher has no connection up to some master that
// serves slots (the Cluster client stays ready when one node connection is lost).
import { Cluster, Redis, ReplyError, type RedisOptions, type Result } from 'ioredis';
import type { Logger } from 'pino';
import type { Warner } from '../log-repeats.js';
import { ConnectionProbe } from './connection-probe.js';
import { groupBySlot, keySlot } from './key-slot.js';
import { ShardedSubscriber, serverRunId, withTimeout } from './sharded-subscriber.js';
import {
  PublishOutcomeUnknown,
  Route,
  START,
  comparePositions,
  type BusHandler,
  type GapHandler,
  type LogEntry,
  type Position,
  type RoomBus,
} from './bus.js';

/**
 * Joins the messages of one published batch; UNIT_SEPARATOR ends each message's position. A bus
 * message is an envelope (rooms/envelope.ts): a header of node ids, kind letters, participant ids
 * and numbers, then a JSON.stringify output, which escapes every control character; so a message
 * never contains either.
 */
export const RECORD_SEPARATOR = '\x1e';
const UNIT_SEPARATOR = '\x1f';
/** Separates, in the header of a batch on the room channel, the positions each node must follow. */
const GROUP_SEPARATOR = '\x1d';

/** A batch that grows past this many UTF-16 code units goes out as is; the next one starts. */
const MAX_BATCH_CHARS = 256 * 1024;

/** Rooms whose keys and channels are kept ready (a node publishes to the rooms of its members). */
const MAX_CACHED_ROOMS = 10_000;

/** Entries per XRANGE when a log is read back. */
const READ_PAGE = 1000;

/** How long to wait before reading the log again after a failed read. */
const RETRY_READ_MS = 500;

/** How long to wait before asking a Redis Cluster again where the slots of lost subscriptions are. */
const RETRY_RESTORE_MS = 200;

// KEYS: the room's log; its positions (a hash: `last`, the log's last position; `wide`, the last
// position published on the room channel; `n:<node>`, the last position published on that node's
// channel since `wide`); who holds each participant (a hash participant -> "<epoch> <node>").
// ARGV: the publish command (PUBLISH or SPUBLISH), the retention in ms, the oldest position to
// keep (MINID), the room channel, the prefix of the node channels, this node's id, how long the
// holders hash lives after its last change (ms), then for each message: its route ('' the room,
// 't' to the participant's node, 'g' the participant is gone, 'h<epoch>' this node holds the
// participant), the participant, the message.
//
// Consecutive messages for one channel go out together as
//   "<previous>\x1e<position>\x1f<message>\x1e<position>\x1f<message>..."
// where <previous> is, for a node channel, the last position that node was sent (on either
// channel); for the room channel, the room channel's last position, followed (\x1d-separated) by
// each node and position sent to that node alone since: a node follows its own, if listed.
//
// Every redis.call costs a few µs beyond its command (measured: INFO commandstats), so positions
// are read with one HMGET and written with one HSET at the end, and the holders hash is only
// touched where a route needs it.
const PUBLISH_SCRIPT = `
local command, retention, minid, roomChannel, nodeChannels, self, holdersTtl =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local positions = redis.call('HMGET', KEYS[2], 'last', 'wide')
local prev, wide = positions[1] or '0-0', positions[2] or '0-0'
-- Nodes sent messages of their own in this call since its last room message, and whether the
-- hash's n: fields were already read and dropped by a room message of this call.
local sent, isCleared, isHolderChanged = {}, false, false
local ids, group, parts = {}, nil, nil
local function send()
  if parts then
    redis.call(command, group == '' and roomChannel or nodeChannels .. group, table.concat(parts, '\\30'))
  end
end
for i = 8, #ARGV, 3 do
  local route, who, message = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local id = redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'p', prev, 'm', message)
  ids[#ids + 1] = id
  prev = id
  local node = nil
  if route == 't' then
    local holder = redis.call('HGET', KEYS[3], who)
    if holder then node = string.sub(holder, string.find(holder, ' ', 1, true) + 1) end
  elseif route == 'g' then
    redis.call('HDEL', KEYS[3], who)
  elseif route ~= '' then
    local epoch = tonumber(string.sub(route, 2))
    local holder = redis.call('HGET', KEYS[3], who)
    if not holder or tonumber(string.sub(holder, 1, string.find(holder, ' ', 1, true) - 1)) <= epoch then
      redis.call('HSET', KEYS[3], who, epoch .. ' ' .. self)
      isHolderChanged = true
    end
  end
  if node then
    if group ~= node then
      send()
      group = node
      local before = sent[node]
      if not before and not isCleared then before = redis.call('HGET', KEYS[2], 'n:' .. node) end
      parts = { before or wide }
    end
    sent[node] = id
  else
    if group ~= '' then
      send()
      group = ''
      local header = { wide }
      if not isCleared then
        local fields = redis.call('HGETALL', KEYS[2])
        local stale = {}
        for j = 1, #fields, 2 do
          local field = fields[j]
          if string.sub(field, 1, 2) == 'n:' then
            stale[#stale + 1] = field
            local n = string.sub(field, 3)
            if not sent[n] then
              header[#header + 1] = n
              header[#header + 1] = fields[j + 1]
            end
          end
        end
        if #stale > 0 then redis.call('HDEL', KEYS[2], unpack(stale)) end
        isCleared = true
      end
      for n, at in pairs(sent) do
        header[#header + 1] = n
        header[#header + 1] = at
      end
      sent = {}
      parts = { table.concat(header, '\\29') }
    end
    wide = id
  end
  parts[#parts + 1] = id .. '\\31' .. message
end
send()
local fields = { 'last', prev, 'wide', wide }
for n, at in pairs(sent) do
  fields[#fields + 1] = 'n:' .. n
  fields[#fields + 1] = at
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('PEXPIRE', KEYS[1], retention)
redis.call('PEXPIRE', KEYS[2], retention)
if isHolderChanged then redis.call('PEXPIRE', KEYS[3], holdersTtl) end
return ids
`;

// KEYS: the positions hash, as above. ARGV: the node. The position a node's next message will name
// as its previous. Flagged read-only, so it runs while Redis holds writes (CLIENT PAUSE WRITE
// during a failover) and is routed like a read.
const BASELINE_SCRIPT = `#!lua flags=no-writes
local p = redis.call('HMGET', KEYS[1], 'n:' .. ARGV[1], 'wide')
return p[1] or p[2] or '0-0'
`;

/**
 * How long the hash of who holds each participant lives after its last change. It is kept up to
 * date by every join, resume and departure, so it may outlive the log; when it has gone (an idle
 * day, a Redis restart) messages for one participant reach every node of the room until its next
 * change.
 */
const HOLDERS_TTL_MS = 24 * 3600_000;

/** ioredis refuses a command it cannot write now (no offline queue): it was never sent. */
const NOT_SENT = /enableOfflineQueue options is false/;

/**
 * A failed script call as its publishes' callers see it: an error reply, or a command ioredis
 * refused to send, ran nowhere; a timeout or a connection lost under it may have run.
 */
function publishFailure(err: Error): Error {
  return err instanceof ReplyError || NOT_SENT.test(err.message) ? err : new PublishOutcomeUnknown(err);
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    logAndPublish(...keysAndArgs: (string | number)[]): Result<string[], Context>;
    logBaseline(positions: string, nodeId: string): Result<string, Context>;
  }
}

export interface RedisBusOptions {
  /** A single Redis; or else clusterNodes. */
  url?: string;
  /** Seed nodes (`host:port`) of a Redis Cluster. */
  clusterNodes?: string[];
  /** On a cluster: replicas that must have each flush before its publishes resolve (WAIT); 0: none. */
  waitReplicas?: number;
  /** How long a WAIT may take; past it the publishes resolve anyway and count as unreplicated. */
  waitTimeoutMs?: number;
  /** This node's id: names its channel and its connections (`<nodeId>:pub`, `<nodeId>:sub`). */
  nodeId: string;
  prefix: string;
  timeoutMs: number;
  /** How long each room's log keeps a message. */
  retentionMs: number;
  /** How often every connection is sent a PING (connection-probe.ts); 0: never. */
  probeIntervalMs?: number;
  /** How long that PING may take before the connection is destroyed and opened again. */
  probeTimeoutMs?: number;
  /** TCP keepalive's idle time on every connection; 0: the system's. */
  keepAliveMs?: number;
  log: Logger;
  /** Warnings a fault repeats (connection errors, failed reads), logged once per interval; else `log`. */
  warnings?: Warner;
  /** A connection (`pub`, `sub`, `ssub`) missed its probe's deadline and was destroyed. */
  onSilent?: (connection: string) => void;
  onStatus?: (isUp: boolean) => void;
  /** Messages this node missed and read back from the log. */
  onRecovered?: (room: string, count: number) => void;
  /** Messages that resolved although fewer replicas than waitReplicas acknowledged them. */
  onUnreplicated?: (count: number) => void;
}

/** The messages one script call logs and publishes, and the callers waiting for their positions. */
interface Batch {
  room: string;
  /** Route, participant and message of each message, in order. */
  messages: string[];
  chars: number;
  promise: Promise<string[]>;
  resolve: (ids: string[]) => void;
  /** Fails the batch's publishes as their callers see it (publishFailure). */
  reject: (err: Error) => void;
}

/** What a subscriber knows of one room's log. */
interface RoomLog {
  /** The last position handed to the handlers; undefined until the first message. */
  last: Position | undefined;
  /**
   * The log's last position just after the SUBSCRIBE took effect. Messages at or before it may
   * still arrive (the subscriber connection can lag the other one); one after it whose previous
   * position is past it, before any message arrived, means some were missed.
   */
  baseline: Position | undefined;
  isReading: boolean;
  /** Another read-back was asked for while one was under way. */
  isReadAgain: boolean;
  /** Published batches that arrived while the log was being read, in arrival order. */
  waiting: string[];
}

export class RedisBus implements RoomBus {
  private readonly pub: Redis | Cluster;
  /** The subscriber connection to a single Redis; null on a cluster. */
  private readonly sub: Redis | null = null;
  /** The shard subscriptions on a cluster; null on a single Redis. */
  private readonly shards: ShardedSubscriber | null = null;
  private readonly waitReplicas: number;
  /** True while the subscriptions lost on a cluster are being restored. */
  private isRestoring = false;
  private readonly handlers: BusHandler[] = [];
  private readonly gapHandlers: GapHandler[] = [];
  private readonly logs = new Map<string, RoomLog>();
  private readonly roomNames = new Map<string, [string, string, string, string, string]>();
  /** The room of each subscribed channel (its room channel and this node's channel). */
  private readonly channelRooms = new Map<string, string>();
  /** PUBLISH on one Redis; SPUBLISH on a Redis Cluster (the shard of the room's slot). */
  private readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  /** The batch still open for each room this turn. */
  private readonly open = new Map<string, Batch>();
  /** Batches that were closed because they grew too big, oldest first; they go out before `open`. */
  private readonly closed: Batch[] = [];
  /** Set by the first publish of a turn (which goes out at once) until the flush at the turn's end. */
  private isFlushScheduled = false;
  private readonly flushNow = () => this.flush();
  /** False from a subscriber disconnect until every room has been read back after the reconnect. */
  private isSubscribed = false;
  /** The Redis server's run id: a new one after a reconnect means it restarted with nothing. */
  private runId = '';
  private isClosing = false;
  /** On a cluster: the masters (`host:port`) that serve slots, as the last slot map said. */
  private masters = new Set<string>();
  private readonly reportNodeStatus = () => this.opts.onStatus?.(this.isUp());
  /** Destroys a connection that stops answering; null when probing is off. */
  private readonly probe: ConnectionProbe | null;
  private readonly warnings: Warner;

  private constructor(private readonly opts: RedisBusOptions) {
    const common: RedisOptions = {
      connectTimeout: opts.timeoutMs,
      commandTimeout: opts.timeoutMs,
      maxRetriesPerRequest: 1,
      // Back off to at most one attempt a second: Redis coming back is noticed within a second.
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
      lazyConnect: true,
      // Some paths (a load balancer's idle timeout) drop a flow silently; keepalive finds those
      // that answer no more at the TCP level, the probe the rest.
      keepAlive: opts.keepAliveMs ?? 0,
    };
    this.warnings = opts.warnings ?? opts.log;
    this.probe =
      opts.probeIntervalMs && opts.probeTimeoutMs
        ? new ConnectionProbe({
            intervalMs: opts.probeIntervalMs,
            timeoutMs: opts.probeTimeoutMs,
            onSilent: (connection, why) => {
              this.warnings.warn(
                { connection, why, timeoutMs: opts.probeTimeoutMs },
                'a redis connection fell silent: destroyed it to open another',
              );
              opts.onSilent?.(connection);
            },
          })
        : null;
    // Named after the node, so CLIENT LIST tells an operator whose connection is whose.
    const name = opts.nodeId;
    this.waitReplicas = opts.clusterNodes ? (opts.waitReplicas ?? 0) : 0;
    if (opts.clusterNodes) {
      this.publishCommand = 'SPUBLISH';
      const { retryStrategy, lazyConnect, ...nodeOptions } = common;
      this.pub = new Cluster(opts.clusterNodes.map(hostAndPort), {
        lazyConnect,
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
        slotsRefreshTimeout: opts.timeoutMs,
        // Slots that moved are noticed within a second even when no command ran into them.
        slotsRefreshInterval: 1000,
        // No delayed retries while a shard is down (CLUSTERDOWN, a connection closed under a
        // command): a retried publish would be logged after later ones of its room, which went out
        // on time, and a room's order is the order of its publishes. It fails instead (`unavailable`).
        retryDelayOnClusterDown: 0,
        retryDelayOnFailover: 0,
        redisOptions: { ...nodeOptions, connectionName: `${name}:pub` },
      });
      // Every connection the Cluster client makes to a node is probed, for as long as it lives; the
      // Cluster client itself stays ready when one of them is lost, so the bus says when it can no
      // longer publish to some master's slots (isUp).
      this.pub.on('+node', (redis: Redis) => {
        this.probe?.watch('pub', redis);
        redis.on('ready', this.reportNodeStatus);
        redis.on('close', this.reportNodeStatus);
      });
      this.pub.on('-node', (redis: Redis) => this.probe?.unwatch(redis));
      this.pub.on('refresh', () => this.followMasters());
      this.shards = new ShardedSubscriber({
        cluster: this.pub,
        redisOptions: { connectTimeout: opts.timeoutMs, connectionName: `${name}:sub`, keepAlive: common.keepAlive },
        onConnection: (redis) => this.probe?.watch('ssub', redis),
        timeoutMs: opts.timeoutMs,
        log: opts.log,
        onMessage: (channel, payload) => this.receive(channel, payload),
        onLost: () => void this.restoreShards(),
      });
    } else {
      this.publishCommand = 'PUBLISH';
      this.pub = new Redis(opts.url!, {
        ...common,
        enableOfflineQueue: false,
        // A command whose connection drops before its reply fails (PublishOutcomeUnknown for a
        // publish) and is never sent again after the reconnect: Redis may have run it already, and
        // a publish run twice is delivered twice. Its caller settles it (a join is retracted, a
        // leave redone, a state write kept) or answers `unavailable`, as on a Redis Cluster.
        maxRetriesPerRequest: 0,
        connectionName: `${name}:pub`,
      });
      // The subscriber keeps its offline queue so SUBSCRIBE issued during an outage runs on reconnect.
      const sub = new Redis(opts.url!, { ...common, commandTimeout: undefined, connectionName: `${name}:sub` });
      sub.on('message', (channel: string, payload: string) => this.receive(channel, payload));
      sub.on('ready', () => void this.resubscribe());
      sub.on('close', () => {
        this.isSubscribed = false;
        opts.onStatus?.(false);
      });
      sub.on('error', (err: Error) => this.warnings.warn({ connection: 'sub', err }, 'redis subscriber error'));
      this.sub = sub;
      this.probe?.watch('pub', this.pub);
      this.probe?.watch('sub', sub);
    }
    this.pub.defineCommand('logAndPublish', { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
    this.pub.defineCommand('logBaseline', { numberOfKeys: 1, lua: BASELINE_SCRIPT });
    this.pub.on('ready', () => this.reportStatus('pub connected'));
    this.pub.on('close', () => opts.onStatus?.(this.isUp()));
    this.pub.on('error', (err: Error) => this.warnings.warn({ connection: 'pub', err }, 'redis publisher error'));
  }

  static async connect(opts: RedisBusOptions): Promise<RedisBus> {
    const bus = new RedisBus(opts);
    // ioredis rejects connect() with "Connection is closed."; the why (ECONNREFUSED, a bad
    // password) came first as an 'error' event.
    let firstError: Error | undefined;
    const remember = (err: Error) => void (firstError ??= err);
    bus.pub.on('error', remember);
    bus.sub?.on('error', remember);
    try {
      await Promise.all([bus.pub.connect(), bus.sub?.connect()]);
    } catch (err) {
      bus.pub.disconnect();
      bus.sub?.disconnect();
      throw firstError ?? err;
    } finally {
      bus.pub.off('error', remember);
      bus.sub?.off('error', remember);
    }
    if (bus.shards) await bus.connectMasters();
    // On a cluster a failover brings a new run id and keeps the data: the sharded subscriber tells
    // a master that restarted in place (restoreShards).
    if (bus.sub) bus.runId = await serverRunId(bus.pub as Redis);
    bus.isSubscribed = true;
    bus.opts.onStatus?.(bus.isUp());
    return bus;
  }

  /**
   * Connects the Cluster client to every master now. It connects to a node on its first command,
   * and without an offline queue (publishes fail fast) it refuses the commands that come while that
   * connection is being made: the second pipeline of a turn to a master not yet connected.
   */
  private async connectMasters(): Promise<void> {
    const masters = (this.pub as Cluster).nodes('master').filter((node) => node.status === 'wait');
    await Promise.all(masters.map((node) => node.ping().catch(() => {})));
  }

  /**
   * After each refresh of the slot map (every second): remembers the masters that serve slots, and
   * connects to those the Cluster client has no connection up to, such as a promoted replica or a
   * master whose connection the probe destroyed (ioredis does not reconnect a node, it makes a new
   * connection at the refresh and opens it at the first command). So the bus is up again as soon as
   * every master answers, without waiting for a publish to open the way.
   */
  private followMasters(): void {
    const masters = new Set<string>();
    for (const nodes of (this.pub as Cluster).slots) if (nodes?.[0]) masters.add(nodes[0]);
    this.masters = masters;
    // Not while the Cluster client connects: it refuses its own ready check on a node connecting
    // (connect() connects the masters once it is ready).
    if (this.isClosing || this.pub.status !== 'ready') return;
    void this.connectMasters().then(this.reportNodeStatus);
  }

  /** On a cluster: the publisher has a connection that is up to every master that serves slots. */
  private canPublishToEveryMaster(): boolean {
    if (!this.shards) return true;
    const up = new Set<string>();
    for (const node of (this.pub as Cluster).nodes('all')) {
      if (node.status === 'ready') up.add(`${node.options.host}:${node.options.port}`);
    }
    for (const master of this.masters) if (!up.has(master)) return false;
    return true;
  }

  private reportStatus(event: string): void {
    this.opts.log.info({ event }, 'redis ready');
    this.opts.onStatus?.(this.isUp());
  }

  /** Keys and channels of a room share one hash tag, so a Redis Cluster keeps them in one slot. */
  private roomKey(room: string, name: string): string {
    return `${this.opts.prefix}{r:${room}}:${name}`;
  }

  private logKey(room: string): string {
    return this.roomKey(room, 'log');
  }

  private positionsKey(room: string): string {
    return this.roomKey(room, 'pos');
  }

  private roomChannel(room: string): string {
    return this.roomKey(room, 'ch');
  }

  private nodeChannel(room: string): string {
    return this.roomKey(room, `n:${this.opts.nodeId}`);
  }

  /**
   * The script's keys and leading arguments for a batch of `room`; the messages follow. The room's
   * names are built once (five strings): the hot path only looks them up.
   */
  private scriptArgs(room: string): (string | number)[] {
    let names = this.roomNames.get(room);
    if (!names) {
      // Rooms come and go; a full cache starts again rather than keeping the ones long gone.
      if (this.roomNames.size >= MAX_CACHED_ROOMS) this.roomNames.clear();
      names = [
        this.logKey(room),
        this.positionsKey(room),
        this.roomKey(room, 'holders'),
        this.roomChannel(room),
        this.roomKey(room, 'n:'),
      ];
      this.roomNames.set(room, names);
    }
    const [log, positions, holders, channel, nodeChannels] = names;
    // Entries older than the retention go as the log grows (MINID ~: whole stream nodes at a time).
    const minId = `${Date.now() - this.opts.retentionMs}-0`;
    return [
      log,
      positions,
      holders,
      this.publishCommand,
      this.opts.retentionMs,
      minId,
      channel,
      nodeChannels,
      this.opts.nodeId,
      HOLDERS_TTL_MS,
    ];
  }

  /** The position the next message routed to this node will name as its previous. */
  private baseline(room: string): Promise<Position> {
    return this.pub.logBaseline(this.positionsKey(room), this.opts.nodeId);
  }

  // ---- publishing -------------------------------------------------------------------------------

  /** Resolves with the message's position once Redis has logged and published it. */
  publish(room: string, payload: string, route = Route.Room, participant = '', epoch = 0): Promise<Position> {
    if (this.pub.status !== 'ready') return Promise.reject(new Error('the redis publisher is not connected'));
    // A separator inside a message would split it on the other side: refuse it loudly.
    if (payload.includes(RECORD_SEPARATOR) || payload.includes(UNIT_SEPARATOR)) {
      return Promise.reject(new Error('a bus message may not contain \\x1e or \\x1f'));
    }
    const routeArg = ROUTE_ARGS[route] ?? `h${epoch}`;
    if (!this.isFlushScheduled) {
      // Everything a turn publishes goes out together once the turn's I/O is done: one socket
      // write (one per slot on a cluster) instead of one more for the turn's first message.
      this.isFlushScheduled = true;
      setImmediate(this.flushNow);
    }
    let batch = this.open.get(room);
    if (batch && batch.chars + payload.length >= MAX_BATCH_CHARS) {
      this.closed.push(batch);
      batch = undefined;
    }
    if (!batch) {
      batch = newBatch(room);
      this.open.set(room, batch);
    }
    const index = (batch.messages.push(routeArg, participant, payload) - 3) / 3;
    batch.chars += payload.length;
    return batch.promise.then((ids) => ids[index]!);
  }

  private flush(): void {
    this.isFlushScheduled = false;
    const batches = this.closed.length > 0 ? [...this.closed.splice(0), ...this.open.values()] : [...this.open.values()];
    this.open.clear();
    if (batches.length === 0) return;
    if (!this.shards) return this.send(batches);
    // A cluster node takes a pipeline only when all its keys are in one slot: one pipeline per slot.
    for (const group of groupBySlot(batches, (b) => this.logKey(b.room))) this.send(group);
  }

  /** Logs and publishes the batches (of one slot, on a cluster) in one pipeline, ended by WAIT if asked. */
  private send(batches: Batch[]): void {
    const replicas = this.replicasToWaitFor(batches[0]!.room);
    if (replicas < this.waitReplicas) this.opts.onUnreplicated?.(countMessages(batches));
    if (batches.length === 1 && replicas === 0) {
      const [b] = batches as [Batch];
      this.pub.logAndPublish(...this.scriptArgs(b.room), ...b.messages).then(b.resolve, b.reject);
      return;
    }
    const pipeline = this.pub.pipeline();
    for (const b of batches) pipeline.logAndPublish(...this.scriptArgs(b.room), ...b.messages);
    // WAIT answers once the replicas have every write this connection made before it.
    if (replicas > 0) pipeline.wait(replicas, this.opts.waitTimeoutMs ?? this.opts.timeoutMs);
    pipeline.exec().then(
      (results) => {
        if (replicas > 0) {
          const [err, acked] = results?.[batches.length] ?? [new Error('no reply')];
          if (err || (acked as number) < replicas) this.opts.onUnreplicated?.(countMessages(batches));
        }
        batches.forEach((b, i) => {
          const [err, ids] = results?.[i] ?? [new Error('no reply')];
          if (err) b.reject(err);
          else b.resolve(ids as string[]);
        });
        // A slot moved (a failover): ioredis redirects single commands, not a pipeline that also
        // held a WAIT, so the slot map is refreshed now rather than at the next periodic refresh.
        if (this.shards && results?.some(([err]) => err?.message.startsWith('MOVED'))) (this.pub as Cluster).refreshSlotsCache();
      },
      (err: Error) => {
        for (const b of batches) b.reject(err);
      },
    );
  }

  /**
   * How many replicas a flush to the room's slot waits for: waitReplicas, or fewer when the slot's
   * master has fewer in the cluster's slot map (refreshed every second), e.g. a promoted replica
   * whose master died. Waiting for a replica that is not there would only add the WAIT timeout to
   * every publish; those publishes count as unreplicated instead.
   */
  private replicasToWaitFor(room: string): number {
    if (this.waitReplicas === 0) return 0;
    const nodes = (this.pub as Cluster).slots[keySlot(this.logKey(room))];
    return Math.min(this.waitReplicas, Math.max(0, (nodes?.length ?? 0) - 1));
  }

  // ---- subscribing ------------------------------------------------------------------------------

  async subscribe(room: string): Promise<void> {
    const roomLog: RoomLog = { last: undefined, baseline: undefined, isReading: false, isReadAgain: false, waiting: [] };
    this.logs.set(room, roomLog);
    const channels = [this.roomChannel(room), this.nodeChannel(room)];
    for (const channel of channels) this.channelRooms.set(channel, room);
    if (this.shards) await Promise.all(channels.map((channel) => this.shards!.add(channel)));
    else await withTimeout(this.sub!.subscribe(...channels), this.opts.timeoutMs, 'subscribe');
    // Everything logged after this read reaches the subscription.
    roomLog.baseline = await this.baseline(room);
  }

  async unsubscribe(room: string): Promise<void> {
    this.logs.delete(room);
    const channels = [this.roomChannel(room), this.nodeChannel(room)];
    for (const channel of channels) this.channelRooms.delete(channel);
    if (this.shards) await Promise.all(channels.map((channel) => this.shards!.remove(channel)));
    else await this.sub!.unsubscribe(...channels);
  }

  onMessage(handler: BusHandler): void {
    this.handlers.push(handler);
  }

  onGap(handler: GapHandler): void {
    this.gapHandlers.push(handler);
  }

  position(room: string): Position {
    const roomLog = this.logs.get(room);
    return roomLog?.last ?? roomLog?.baseline ?? START;
  }

  private receive(channel: string, payload: string): void {
    const room = this.channelRooms.get(channel);
    if (room === undefined) return;
    const roomLog = this.logs.get(room);
    if (!roomLog) return;
    if (roomLog.isReading) {
      roomLog.waiting.push(payload);
      return;
    }
    this.apply(room, roomLog, payload);
  }

  /** Hands a published batch on, or starts reading the log when messages before it are missing. */
  private apply(room: string, roomLog: RoomLog, payload: string): void {
    let start = payload.indexOf(RECORD_SEPARATOR);
    const prev = this.previousOf(payload.slice(0, start));
    // The usual case: the batch follows what was handed on last, so none of it is old news.
    // Before anything was handed on, none of it is either, unless messages after the baseline are
    // missing in front of it.
    const isNext = prev === roomLog.last || roomLog.last === undefined;
    const expected = roomLog.last ?? roomLog.baseline;
    if (prev !== roomLog.last && expected !== undefined && comparePositions(prev, expected) > 0) {
      roomLog.waiting.unshift(payload);
      void this.readBack(room, roomLog);
      return;
    }
    start++;
    for (;;) {
      const end = payload.indexOf(RECORD_SEPARATOR, start);
      const cut = payload.indexOf(UNIT_SEPARATOR, start);
      const position = payload.slice(start, cut);
      const message = end < 0 ? payload.slice(cut + 1) : payload.slice(cut + 1, end);
      if (isNext) this.handOn(room, roomLog, position, message);
      else this.deliver(room, roomLog, position, message);
      if (end < 0) return;
      start = end + 1;
    }
  }

  /**
   * The position before a batch that this node was routed: the header's own, or on the room
   * channel this node's entry when messages went to it alone since the room channel's last.
   */
  private previousOf(header: string): Position {
    if (!header.includes(GROUP_SEPARATOR)) return header;
    const fields = header.split(GROUP_SEPARATOR);
    for (let i = 1; i + 1 < fields.length; i += 2) if (fields[i] === this.opts.nodeId) return fields[i + 1]!;
    return fields[0]!;
  }

  /** Hands one message on unless it was handed on already (read back, then published too). */
  private deliver(room: string, roomLog: RoomLog, position: Position, message: string): void {
    if (roomLog.last !== undefined && comparePositions(position, roomLog.last) <= 0) return;
    this.handOn(room, roomLog, position, message);
  }

  private handOn(room: string, roomLog: RoomLog, position: Position, message: string): void {
    roomLog.last = position;
    for (const handler of this.handlers) handler(room, message, position);
  }

  /**
   * Reads what the room's log holds after the last position handed on, hands it on, then what
   * arrived meanwhile. Retries while Redis cannot be read; reports a gap when the log lost some.
   */
  private async readBack(room: string, roomLog: RoomLog): Promise<void> {
    if (roomLog.isReading) {
      // The read under way may have read the log before what this caller knows was missed (a
      // reconnect after the read began): it reads once more when done.
      roomLog.isReadAgain = true;
      return;
    }
    roomLog.isReading = true;
    for (;;) {
      if (this.logs.get(room) !== roomLog || this.isClosing) return;
      roomLog.isReadAgain = false;
      const after = roomLog.last ?? roomLog.baseline;
      try {
        if (after === undefined) {
          // The subscription was lost before it said where the log stood: what was missed cannot
          // be told apart from what came before.
          this.reportGap(room);
          roomLog.baseline = await this.baseline(room);
        } else {
          let { entries, isComplete } = await this.read(room, after, '+');
          if (entries.length === 0) {
            // An empty read is complete only if nothing was logged since: the log itself may be
            // gone (the last position outlives it). Read once more up to that last position.
            const newest = await this.pub.hget(this.positionsKey(room), 'last');
            if (newest !== null && comparePositions(newest, after) > 0) {
              ({ entries, isComplete } = await this.read(room, after, newest));
              if (entries.length === 0) roomLog.last = newest;
            }
          }
          if (this.logs.get(room) !== roomLog) return;
          if (!isComplete) this.reportGap(room);
          for (const e of entries) this.deliver(room, roomLog, e.position, e.payload);
          if (entries.length > 0) this.opts.onRecovered?.(room, entries.length);
        }
        if (roomLog.isReadAgain) continue;
        break;
      } catch (err) {
        this.warnings.warn({ err, room }, 'could not read a room log back; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_READ_MS).unref());
      }
    }
    roomLog.isReading = false;
    const waiting = roomLog.waiting.splice(0);
    for (let i = 0; i < waiting.length; i++) {
      this.apply(room, roomLog, waiting[i]!);
      if (roomLog.isReading) {
        // Another hole: the rest waits behind that read.
        roomLog.waiting.push(...waiting.slice(i + 1));
        return;
      }
    }
  }

  private reportGap(room: string): void {
    for (const handler of this.gapHandlers) handler(room);
  }

  /**
   * After a reconnect: makes sure every room is subscribed again (ioredis resubscribes on its own;
   * awaiting our own SUBSCRIBE behind its commands says when that is done), then reads back what
   * each room logged while the subscriber was away. Until then the bus does not report itself up.
   */
  private async resubscribe(): Promise<void> {
    // The first connection is connect()'s to set up; this is for the ones after it.
    if (this.runId === '' || this.isSubscribed || this.isClosing) return;
    const rooms = [...this.logs.keys()];
    try {
      const runId = await serverRunId(this.pub as Redis);
      if (runId !== this.runId) {
        // Redis restarted and kept nothing: whatever was on its way to this node is gone.
        this.opts.log.warn({ rooms: rooms.length }, 'redis restarted: healing every room from the database');
        for (const room of rooms) this.reportGap(room);
        this.runId = runId;
      }
      if (rooms.length > 0) await this.sub!.subscribe(...rooms.flatMap((r) => [this.roomChannel(r), this.nodeChannel(r)]));
      await Promise.all(rooms.map((room) => this.logs.get(room) && this.readBack(room, this.logs.get(room)!)));
      this.isSubscribed = true;
      this.reportStatus('sub resubscribed');
    } catch (err) {
      this.opts.log.warn({ err }, 'could not restore the subscriptions; retrying on the next reconnect');
      this.sub!.disconnect(true);
    }
  }

  /**
   * On a cluster, after a subscriber connection was lost or a slot moved: subscribes every room
   * again where its slot lives now (retrying while the cluster still names a dead master), then
   * reads back what each room logged meanwhile. Until then the bus does not report itself up.
   */
  private async restoreShards(): Promise<void> {
    this.isSubscribed = false;
    this.opts.onStatus?.(false);
    if (this.isRestoring) return;
    this.isRestoring = true;
    const started = Date.now();
    while (!this.isClosing) {
      try {
        await this.shards!.restore();
        this.healRestartedShards();
        // A promoted replica is a master the Cluster client has not connected to yet.
        await this.connectMasters();
        await Promise.all([...this.logs].map(([room, roomLog]) => this.readBack(room, roomLog)));
        // Lost again while reading back: what was read may already be followed by a new hole.
        if (this.shards!.isLost) continue;
        this.isSubscribed = true;
        this.opts.log.info({ ms: Date.now() - started, rooms: this.logs.size }, 'sharded subscriptions restored');
        this.reportStatus('ssub restored');
        break;
      } catch (err) {
        // Expected until the cluster has promoted a replica of a dead master.
        this.opts.log.debug({ err }, 'could not restore the sharded subscriptions yet; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_RESTORE_MS).unref());
      }
    }
    this.isRestoring = false;
  }

  /**
   * Rooms subscribed again on a master that restarted in place (no replica took its slots over)
   * may have lost what it held, as on one Redis that restarted: their views are healed.
   */
  private healRestartedShards(): void {
    const rooms = new Set<string>();
    for (const channel of this.shards!.takeRestarted()) {
      const room = this.channelRooms.get(channel);
      if (room !== undefined) rooms.add(room);
    }
    if (rooms.size === 0) return;
    this.opts.log.warn({ rooms: rooms.size }, 'a redis cluster master restarted: healing its rooms from the database');
    for (const room of rooms) this.reportGap(room);
  }

  /** Reads in pages of READ_PAGE entries, so a long gap never makes Redis build one huge reply. */
  async read(room: string, after: Position, until: Position): Promise<{ entries: LogEntry[]; isComplete: boolean }> {
    const entries: LogEntry[] = [];
    let isComplete = false;
    for (let cursor = after; ;) {
      const rows = (await this.pub.xrange(this.logKey(room), `(${cursor}`, until, 'COUNT', READ_PAGE)) as [string, string[]][];
      if (entries.length === 0) {
        // Fields are written as p, <previous position>, m, <message>: the first entry must follow
        // `after`, or the log dropped what came between.
        isComplete = rows.length === 0 ? until === '+' || after === until : rows[0]![1][1] === after;
      }
      for (const [position, fields] of rows) entries.push({ position, payload: fields[3]! });
      if (rows.length < READ_PAGE) return { entries, isComplete };
      cursor = rows.at(-1)![0];
    }
  }

  isUp(): boolean {
    const isListening = this.shards ? this.shards.isUp() : this.sub!.status === 'ready';
    return this.pub.status === 'ready' && this.canPublishToEveryMaster() && isListening && this.isSubscribed;
  }

  /** The publishing connection, for features that keep small amounts of data in Redis. */
  get client(): Redis | Cluster {
    return this.pub;
  }

  async close(): Promise<void> {
    this.isClosing = true;
    this.probe?.stop();
    // What was published this turn still goes out (a stopping node's last handovers).
    if (this.isFlushScheduled) this.flush();
    await this.pub.quit().catch(() => this.pub.disconnect());
    this.sub?.disconnect();
    await this.shards?.close();
  }
}

/** The script's route argument of each Route but Home (which carries its epoch). */
const ROUTE_ARGS: Partial<Record<Route, string>> = { [Route.Room]: '', [Route.To]: 't', [Route.Gone]: 'g' };

function newBatch(room: string): Batch {
  let resolve!: (ids: string[]) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<string[]>((res, rej) => {
    resolve = res;
    reject = (err) => rej(publishFailure(err));
  });
  return { room, messages: [], chars: 0, promise, resolve, reject };
}

const countMessages = (batches: Batch[]): number => batches.reduce((sum, b) => sum + b.messages.length / 3, 0);

/** `host:port` as ioredis's Cluster takes a seed. */
function hostAndPort(node: string): { host: string; port: number } {
  const colon = node.lastIndexOf(':');
  return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
}
