// The bus scenario: one Redis against a local Redis Cluster at the same offered rate, each a
// private set of redis-server processes so that their CPU is this run's alone. Two loads:
//   raw      the floor of the bus: one ioredis client publishing to `rooms` hash-tagged channels
//            (PUBLISH on one Redis, SPUBLISH on the cluster, auto-pipelined) and one subscribing
//            to all of them; no server, no log
//   project  the project's nodes on that Redis (REDIS_URL, or REDIS_CLUSTER_NODES on the cluster)
//            under the relay load, one pair per room
// It reports CPU per delivery (the publishing and subscribing side + every Redis process) and how
// the publishes fell on the shards (INFO commandstats of each master: publish + spublish calls,
// those run inside scripts included).
import { Cluster as RedisCluster, Redis } from 'ioredis';
import { startRedisCluster } from '../../../signaling-server/test/support/redis-cluster.js';
import { startThrowawayRedis } from '../../../signaling-server/test/support/throwaway-redis.js';
import { cpuSeconds, startCpuMeter } from '../procstat.js';
import { startProjectCluster, type ClusterOptions } from '../cluster/cluster.js';
import { round, runLoad, type GeneratorOptions } from './engine.js';
import type { FlowResult } from '../results.js';
import { median } from '../report/markdown.js';

export type RedisKind = 'single' | 'cluster';
export type BusLoad = 'raw' | 'project';

export interface BusSpec {
  redis: RedisKind;
  load: BusLoad;
  /** Publishes (raw) or signals (project) per second, in all. */
  rate: number;
  rooms: number;
  masters: number;
  replicasPerMaster: number;
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  payloadBytes: number;
}

export interface ShardCount {
  port: number;
  publishes: number;
  cpuSeconds: number;
}

export interface BusResult {
  redis: RedisKind;
  load: BusLoad;
  params: Record<string, number | string>;
  sent: number;
  delivered: number;
  lost: number;
  /** Deliveries in the measured window, the ones the CPU figures are about. */
  measured: number;
  /** The publishing and subscribing side: this process for `raw`, the project's nodes for `project`. */
  clientSeconds: number;
  /** Every redis-server process (masters and replicas). */
  redisSeconds: number;
  perThousandDeliveries: number | null;
  shards: ShardCount[];
  /** Publishes on the busiest master over those on the least busy one; 1 on one Redis. */
  busiestOverLeast: number | null;
  relay?: FlowResult | undefined;
  errors: Record<string, number>;
}

interface RedisUnderTest {
  kind: RedisKind;
  /** host:port of every node. */
  seeds: string[];
  masterPorts(): Promise<number[]>;
  pids: number[];
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

async function pidOf(port: number): Promise<number> {
  const r = new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  try {
    await r.connect();
    const m = /process_id:(\d+)/.exec(await r.info('server'));
    if (!m) throw new Error(`redis on ${port}: no process_id in INFO`);
    return Number(m[1]);
  } finally {
    r.disconnect();
  }
}

async function startRedis(spec: BusSpec): Promise<RedisUnderTest> {
  if (spec.redis === 'single') {
    const r = await startThrowawayRedis();
    return {
      kind: 'single',
      seeds: [`${HOST}:${r.port}`],
      masterPorts: async () => [r.port],
      pids: [await pidOf(r.port)],
      stop: () => r.stop(),
    };
  }
  const c = await startRedisCluster({ masters: spec.masters, replicasPerMaster: spec.replicasPerMaster });
  try {
    return {
      kind: 'cluster',
      seeds: c.seeds,
      masterPorts: () => c.masterPorts(),
      pids: await Promise.all(c.nodes.map((n) => pidOf(n.port))),
      stop: () => c.stop(),
    };
  } catch (err) {
    await c.stop();
    throw err;
  }
}

/** publish + spublish calls so far on each of `ports` (scripts' calls included). */
async function publishCalls(ports: number[]): Promise<number[]> {
  return Promise.all(
    ports.map(async (port) => {
      const r = new Redis({ host: HOST, port, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
      try {
        const stats = await r.info('commandstats');
        let calls = 0;
        for (const m of stats.matchAll(/^cmdstat_s?publish:calls=(\d+)/gm)) calls += Number(m[1]);
        return calls;
      } finally {
        r.disconnect();
      }
    }),
  );
}

export function busiestOverLeast(publishes: number[]): number | null {
  if (!publishes.length) return null;
  const least = Math.min(...publishes);
  return least > 0 ? round(Math.max(...publishes) / least, 3) : null;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The floor of the bus: paced publishes to hash-tagged room channels, one subscriber to all. */
type LoadOutcome = Omit<BusResult, 'shards' | 'busiestOverLeast' | 'redis' | 'load' | 'params'>;

async function runRaw(spec: BusSpec, redis: RedisUnderTest): Promise<LoadOutcome> {
  const [host, port] = redis.seeds[0]!.split(':');
  const channels = Array.from({ length: spec.rooms }, (_, i) => `bus:{r${i}}`);
  const isCluster = redis.kind === 'cluster';
  const nodes = redis.seeds.map((s) => ({ host: s.split(':')[0]!, port: Number(s.split(':')[1]) }));
  const pub = isCluster
    ? new RedisCluster(nodes, { enableAutoPipelining: true })
    : new Redis({ host, port: Number(port), enableAutoPipelining: true });
  const sub = isCluster ? new RedisCluster(nodes, { shardedSubscribers: true }) : new Redis({ host, port: Number(port) });
  const errors: Record<string, number> = {};
  const count = (code: string) => (errors[code] = (errors[code] ?? 0) + 1);
  pub.on('error', () => count('publisher'));
  sub.on('error', () => count('subscriber'));
  let delivered = 0;
  let measured = 0;
  let isMeasuring = false;
  const onMessage = () => {
    delivered++;
    if (isMeasuring) measured++;
  };
  try {
    if (isCluster) {
      sub.on('smessage', onMessage);
      for (const ch of channels) await (sub as RedisCluster).ssubscribe(ch);
    } else {
      sub.on('message', onMessage);
      await (sub as Redis).subscribe(...channels);
    }
    const message = 'x'.repeat(spec.payloadBytes);
    let sent = 0;
    const start = Date.now();
    const end = start + spec.warmupMs + spec.durationMs;
    const publish = (ch: string) =>
      (isCluster ? pub.spublish(ch, message) : pub.publish(ch, message)).catch(() => count('publish'));
    let meter: ReturnType<typeof startCpuMeter> | undefined;
    let self = process.cpuUsage();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = Math.min(Date.now(), end);
        if (!isMeasuring && now - start >= spec.warmupMs) {
          isMeasuring = true;
          meter = startCpuMeter(redis.pids);
          self = process.cpuUsage();
        }
        for (const due = Math.floor(((now - start) / 1000) * spec.rate); sent < due; sent++)
          void publish(channels[sent % channels.length]!);
        if (now >= end) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    });
    const drainEnd = Date.now() + spec.drainMs;
    while (delivered < sent && Date.now() < drainEnd) await delay(20);
    const own = process.cpuUsage(self);
    const clientSeconds = (own.user + own.system) / 1e6;
    const redisSeconds = (meter?.read() ?? []).reduce((a, b) => a + b, 0);
    return {
      sent,
      delivered,
      lost: Math.max(0, sent - delivered),
      measured,
      clientSeconds: round(clientSeconds, 3),
      redisSeconds: round(redisSeconds, 3),
      perThousandDeliveries: measured ? round(((clientSeconds + redisSeconds) / measured) * 1000, 4) : null,
      errors,
    };
  } finally {
    pub.disconnect();
    sub.disconnect();
  }
}

export interface ProjectBusOptions {
  cluster: Omit<ClusterOptions, 'redisUrl' | 'nodeCount'> & { nodeCount: number };
  generator: GeneratorOptions;
}

/** The project's nodes on the Redis under test, under the relay load, one pair per room. */
async function runProject(spec: BusSpec, redis: RedisUnderTest, opts: ProjectBusOptions): Promise<LoadOutcome> {
  const redisEnv: Record<string, string> = redis.kind === 'cluster' ? { REDIS_CLUSTER_NODES: redis.seeds.join(',') } : {};
  const cluster = await startProjectCluster({
    ...opts.cluster,
    redisUrl: redis.kind === 'single' ? `redis://${redis.seeds[0]}` : '',
    extraEnv: { ...opts.cluster.extraEnv, ...redisEnv },
  });
  try {
    cluster.redisPids = redis.pids;
    const result = await runLoad(
      {
        scenario: 'relay',
        warmupMs: spec.warmupMs,
        durationMs: spec.durationMs,
        drainMs: spec.drainMs,
        relay: { pairs: spec.rooms, ratePerPair: spec.rate / spec.rooms },
        params: {},
      },
      cluster,
      { ...opts.generator, redisUrl: redis.kind === 'single' ? `redis://${redis.seeds[0]}` : opts.generator.redisUrl },
    );
    const f = result.relay!;
    return {
      sent: f.sent,
      delivered: f.delivered,
      lost: f.lost,
      measured: f.measured,
      clientSeconds: result.cpu.serverSeconds,
      redisSeconds: result.cpu.redisSeconds ?? 0,
      perThousandDeliveries: result.cpu.perThousandDeliveriesWithRedis ?? null,
      relay: f,
      errors: result.errors,
    };
  } finally {
    await cluster.stop();
  }
}

/** One arm: starts its own Redis (or cluster), runs the load, counts publishes per master, stops it. */
export async function runBus(spec: BusSpec, project?: ProjectBusOptions): Promise<BusResult> {
  if (spec.load === 'project' && !project) throw new Error('the project load needs cluster options');
  const redis = await startRedis(spec);
  try {
    const ports = await redis.masterPorts();
    const before = await publishCalls(ports);
    const cpuBefore = ports.map(() => 0);
    const pidByPort = new Map(await Promise.all(ports.map(async (p) => [p, await pidOf(p)] as const)));
    ports.forEach((p, i) => (cpuBefore[i] = cpuSeconds(pidByPort.get(p)!)));
    const r = spec.load === 'raw' ? await runRaw(spec, redis) : await runProject(spec, redis, project!);
    const after = await publishCalls(ports);
    const shards = ports.map((port, i) => ({
      port,
      publishes: after[i]! - before[i]!,
      cpuSeconds: round(cpuSeconds(pidByPort.get(port)!) - cpuBefore[i]!, 3),
    }));
    return {
      redis: spec.redis,
      load: spec.load,
      params: {
        rate: spec.rate,
        rooms: spec.rooms,
        masters: spec.redis === 'cluster' ? spec.masters : 1,
        replicasPerMaster: spec.redis === 'cluster' ? spec.replicasPerMaster : 0,
        payloadBytes: spec.payloadBytes,
      },
      sent: r.sent,
      delivered: r.delivered,
      lost: r.lost,
      measured: r.measured,
      clientSeconds: r.clientSeconds,
      redisSeconds: r.redisSeconds,
      perThousandDeliveries: r.perThousandDeliveries,
      shards,
      busiestOverLeast: busiestOverLeast(shards.map((s) => s.publishes)),
      relay: r.relay,
      errors: r.errors,
    };
  } finally {
    await redis.stop();
  }
}

export function renderBusSummary(results: BusResult[]): string {
  const lines = results.map((r) => {
    const shards = r.shards.map((s) => `${s.port}: ${s.publishes} publishes, ${s.cpuSeconds} s`).join('; ');
    const lat = r.relay ? `  p50 ${r.relay.latencyMs.p50} p99 ${r.relay.latencyMs.p99} ms` : '';
    const errs = Object.entries(r.errors)
      .map(([k, v]) => `${k}:${v}`)
      .join(' ');
    return (
      `bus/${r.load}/${r.redis}`.padEnd(20) +
      ` delivered ${r.delivered}/${r.sent} lost ${r.lost}${lat}  cpu ${r.perThousandDeliveries ?? '-'} s/1k deliveries` +
      ` (client ${r.clientSeconds} s + redis ${r.redisSeconds} s for ${r.measured})  busiest/least ${r.busiestOverLeast ?? '-'}  [${shards}]` +
      (errs ? `  errors ${errs}` : '')
    );
  });
  if (results.some((r) => r.load === 'project' && r.redis === 'cluster' && !r.shards.some((s) => s.publishes > 0))) {
    lines.push("the project's nodes published nothing on the cluster: this build does not take REDIS_CLUSTER_NODES");
  }
  // With several rounds, medians of each side, as bench's verdicts.
  const cpuOf = (kind: RedisKind) =>
    results.filter((r) => r.redis === kind && r.perThousandDeliveries).map((r) => r.perThousandDeliveries!);
  const [single, cluster] = [cpuOf('single'), cpuOf('cluster')];
  const spreads = results.filter((r) => r.redis === 'cluster' && r.busiestOverLeast !== null).map((r) => r.busiestOverLeast!);
  if (single.length && cluster.length) {
    const ratio = median(cluster) / median(single);
    const uneven = spreads.length ? median(spreads) : Number.POSITIVE_INFINITY;
    lines.push(
      `cluster/single CPU per delivery ${ratio.toFixed(2)}× (medians ${median(cluster)} vs ${median(single)} s/1k; target ≤ 1.15×: ${ratio <= 1.15 ? 'met' : 'missed'}); ` +
        `busiest/least busy shard ${spreads.length ? uneven : '-'} (target ≤ 1.3: ${uneven <= 1.3 ? 'met' : 'missed'})`,
    );
  }
  return lines.join('\n');
}
