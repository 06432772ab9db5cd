// Runs one load on a started cluster: splits it over worker threads, measures the server
// processes' CPU over the window after warm-up, and folds the workers' reports into one result.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startWindowProfiles } from '../cluster/window-profiler.js';
import { summarizeProfiles, type CpuProfile } from '../report/profile.js';
import { LatencyHistogram } from '../histogram.js';
import { cpuSeconds, rssBytes, startCpuMeter } from '../procstat.js';
import { ProgressLine } from '../progress.js';
import { sourceAddresses } from '../sources.js';
import type { Cluster } from '../cluster/cluster.js';
import { WorkerPool } from '../worker/pool.js';
import type { ChurnPlan, FanoutPlan, FlowStats, RelayPlan, SpreadPlan, WorkerPlan, WorkerStats } from '../worker/messages.js';
import type { ChurnResult, CpuResult, FlowResult, NodeSample, ScenarioName, ScenarioResult } from '../results.js';

export interface GeneratorOptions {
  workers: number;
  /** Use at least this many 127.x.y.z source addresses … */
  minSources: number;
  /** … and enough that no address carries more than this many clients. */
  clientsPerSource: number;
  payloadBytes: number;
  connectConcurrency: number;
  requestTimeoutMs: number;
  runId: string;
  redisUrl: string;
  quiet: boolean;
  /** Profile the servers over each measured window and keep the .cpuprofile files here. */
  profileDir?: string | undefined;
}

export interface LoadSpec {
  scenario: ScenarioName;
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  relay?: { pairs: number; ratePerPair: number };
  fanout?: { rooms: number; roomSize: number; ratePerRoom: number };
  churn?: { clients: number; joinsPerSecond: number; holdMs: number; rooms: number };
  /** Rooms of K spread over `span` nodes, member 0 signalling member 1 (the `spread` scenario). */
  spread?: { rooms: number; roomSize: number; ratePerRoom: number; span: number };
  /** Sample RSS and event-loop lag of every node this often (soak). */
  sampleMs?: number;
  params: Record<string, number | string>;
}

/** Splits `total` items into `parts` contiguous ranges. */
export function split(total: number, parts: number): Array<{ first: number; count: number }> {
  const out: Array<{ first: number; count: number }> = [];
  let first = 0;
  for (let i = 0; i < parts; i++) {
    const count = Math.floor(total / parts) + (i < total % parts ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}

let redisPid: number | null | undefined;

export async function findRedisPid(redisUrl: string): Promise<number | null> {
  if (redisPid !== undefined) return redisPid;
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  try {
    await r.connect();
    const m = /process_id:(\d+)/.exec(await r.info('server'));
    redisPid = m && Number.isFinite(cpuSeconds(Number(m[1]))) ? Number(m[1]) : null;
  } catch {
    redisPid = null;
  } finally {
    r.disconnect();
  }
  return redisPid;
}

/** The p99 event-loop lag a node reports on /metrics (prom-client's default metric), if any. */
export async function scrapeLagP99Ms(httpUrl: string): Promise<number | null> {
  try {
    const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(2_000) });
    const text = await res.text();
    const m = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})?\s+([0-9.eE+-]+)/m.exec(text);
    return m ? Number(m[1]) * 1000 : null;
  } catch {
    return null;
  }
}

function flowResult(parts: Array<FlowStats | undefined>, windowS: number): FlowResult | undefined {
  const flows = parts.filter((p): p is FlowStats => !!p);
  if (!flows.length) return undefined;
  const h = new LatencyHistogram();
  for (const f of flows) h.merge(f.latency);
  const sum = (k: 'sent' | 'expected' | 'delivered' | 'measured' | 'outOfOrder') => flows.reduce((s, f) => s + f[k], 0);
  const expected = sum('expected');
  const delivered = sum('delivered');
  return {
    sent: sum('sent'),
    expected,
    delivered,
    lost: Math.max(0, expected - delivered),
    outOfOrder: sum('outOfOrder'),
    measured: sum('measured'),
    throughputPerS: Math.round(sum('measured') / windowS),
    latencyMs: h.percentilesMs(),
  };
}

function churnResult(stats: WorkerStats[], windowS: number): ChurnResult | undefined {
  const parts = stats.map((s) => s.churn).filter((c): c is NonNullable<typeof c> => !!c);
  if (!parts.length) return undefined;
  const join = new LatencyHistogram();
  const leave = new LatencyHistogram();
  for (const p of parts) {
    join.merge(p.join);
    leave.merge(p.leave);
  }
  const sum = (k: 'joins' | 'leaves' | 'failedJoins' | 'failedLeaves' | 'starved') => parts.reduce((s, p) => s + p[k], 0);
  return {
    joins: sum('joins'),
    leaves: sum('leaves'),
    failedJoins: sum('failedJoins'),
    failedLeaves: sum('failedLeaves'),
    starved: sum('starved'),
    joinsPerS: Math.round(join.count / windowS),
    joinMs: join.percentilesMs(),
    leaveMs: leave.percentilesMs(),
  };
}

function plansFor(spec: LoadSpec, cluster: Cluster, gen: GeneratorOptions): WorkerPlan[] {
  const w = gen.workers;
  const clients =
    (spec.relay?.pairs ?? 0) * 2 +
    (spec.fanout ? spec.fanout.rooms * spec.fanout.roomSize : 0) +
    (spec.spread ? spec.spread.rooms * spec.spread.roomSize : 0) +
    (spec.churn?.clients ?? 0);
  const sources = sourceAddresses(clients, gen.minSources, gen.clientsPerSource);
  const pairs = spec.relay ? split(spec.relay.pairs, w) : [];
  const rooms = spec.fanout ? split(spec.fanout.rooms, w) : [];
  const churners = spec.churn ? split(spec.churn.clients, w) : [];
  const spreadRooms = spec.spread ? split(spec.spread.rooms, w) : [];
  return Array.from({ length: w }, (_, i) => {
    const relay: RelayPlan | undefined = spec.relay && {
      firstPair: pairs[i]!.first,
      pairs: pairs[i]!.count,
      ratePerPair: spec.relay.ratePerPair,
    };
    const fanout: FanoutPlan | undefined = spec.fanout && {
      firstRoom: rooms[i]!.first,
      rooms: rooms[i]!.count,
      roomSize: spec.fanout.roomSize,
      ratePerRoom: spec.fanout.ratePerRoom,
    };
    const churn: ChurnPlan | undefined = spec.churn && {
      firstClient: churners[i]!.first,
      clients: churners[i]!.count,
      joinsPerSecond: spec.churn.joinsPerSecond / w,
      holdMs: spec.churn.holdMs,
      rooms: spec.churn.rooms,
    };
    const spread: SpreadPlan | undefined = spec.spread && {
      ...spec.spread,
      firstRoom: spreadRooms[i]!.first,
      rooms: spreadRooms[i]!.count,
    };
    return {
      index: i,
      workers: w,
      target: cluster.kind,
      urls: cluster.nodes.map((n) => n.wsUrl),
      sourceAddresses: sources,
      runId: gen.runId,
      payloadBytes: gen.payloadBytes,
      connectConcurrency: gen.connectConcurrency,
      requestTimeoutMs: gen.requestTimeoutMs,
      relay: relay?.pairs ? relay : undefined,
      fanout: fanout?.rooms ? fanout : undefined,
      churn: churn?.clients ? churn : undefined,
      spread: spread?.rooms ? spread : undefined,
    };
  });
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runLoad(spec: LoadSpec, cluster: Cluster, gen: GeneratorOptions): Promise<ScenarioResult> {
  const pids = cluster.nodes.map((n) => n.pid);
  // A cluster with its own Redis processes (the bus scenario) names them; else the shared server.
  const sharedRedis = cluster.redisPids ? null : await findRedisPid(gen.redisUrl);
  const redisPids = cluster.redisPids ?? (sharedRedis ? [sharedRedis] : []);
  const pool = new WorkerPool(plansFor(spec, cluster, gen));
  const label = `${spec.scenario}/${cluster.kind}`;
  try {
    const setup = await pool.ready(120_000 + (spec.churn?.clients ?? 0) * 10);
    if (!gen.quiet) {
      process.stderr.write(
        `  ${label}: ${setup.connected} clients connected in ${(setup.setupMs / 1000).toFixed(1)} s` +
          (setup.failed ? `, ${setup.failed} failed` : '') +
          '\n',
      );
    }
    const rssBefore = pids.map(rssBytes);
    const progress = new ProgressLine(label, spec.warmupMs + spec.durationMs, gen.quiet);
    const samples: NodeSample[] = [];
    const sampleWindow = new LatencyHistogram();
    let sampleDelivered = 0;
    let lastSampleDelivered = 0;
    const perWorkerDelivered = new Map<number, number>();
    pool.onProgress = (i, p) => {
      progress.update(i, p);
      sampleWindow.merge(p.interval);
      perWorkerDelivered.set(i, p.delivered);
      sampleDelivered = [...perWorkerDelivered.values()].reduce((s, n) => s + n, 0);
    };
    pool.start(spec.warmupMs, spec.durationMs, spec.drainMs);
    await delay(spec.warmupMs);

    const profiling = gen.profileDir ? await startWindowProfiles(cluster.nodes) : undefined;
    const cpu = startCpuMeter(pids);
    const pgAtStart = new Map((await (cluster.postgresPids?.() ?? Promise.resolve([]))).map((pid) => [pid, cpuSeconds(pid)]));
    const redisCpu = redisPids.length ? startCpuMeter(redisPids) : undefined;
    const genCpu = process.cpuUsage();
    const windowStart = Date.now();
    lastSampleDelivered = sampleDelivered;
    let sampler: NodeJS.Timeout | undefined;
    if (spec.sampleMs) {
      const takeSample = async () => {
        const lag = await Promise.all(cluster.nodes.map((n) => scrapeLagP99Ms(n.httpUrl)));
        const atS = (Date.now() - windowStart) / 1000;
        const prevAt = samples.at(-1)?.atS ?? 0;
        samples.push({
          atS: Math.round(atS * 10) / 10,
          rssBytes: pids.map(rssBytes),
          lagP99Ms: lag.map((x) => (x === null ? null : round(x, 2))),
          deliveredPerS: Math.round((sampleDelivered - lastSampleDelivered) / Math.max(0.001, atS - prevAt)),
          p99Ms: sampleWindow.count ? Math.round(sampleWindow.quantileUs(0.99)) / 1000 : null,
        });
        lastSampleDelivered = sampleDelivered;
        sampleWindow.reset();
      };
      sampler = setInterval(() => void takeSample(), spec.sampleMs);
    }

    const stats = await pool.done(spec.durationMs + spec.drainMs + 60_000);
    if (sampler) clearInterval(sampler);
    const windowS = (Date.now() - windowStart) / 1000;
    const perNode = cpu.read();
    const g = process.cpuUsage(genCpu);
    let profile: ScenarioResult['profile'];
    if (profiling && gen.profileDir) {
      const profiles = await profiling.stop();
      mkdirSync(gen.profileDir, { recursive: true });
      for (const p of profiles)
        writeFileSync(join(gen.profileDir, `${spec.scenario}-${p.node}.cpuprofile`), JSON.stringify(p.profile));
      profile = summarizeProfiles(
        cluster.kind,
        profiles.map((p) => p.profile as CpuProfile),
      );
    }
    let postgresSeconds: number | null = null;
    if (cluster.postgresPids) {
      // Backends that came up during the window count whole; ones that ended are missed.
      postgresSeconds = 0;
      for (const pid of await cluster.postgresPids()) {
        const now = cpuSeconds(pid);
        if (Number.isFinite(now)) postgresSeconds += now - (pgAtStart.get(pid) ?? 0);
      }
    }
    progress.stop();
    const rssAfter = pids.map(rssBytes);

    const measuredWindowS = spec.durationMs / 1000;
    const relay = flowResult(
      stats.map((s) => s.relay),
      measuredWindowS,
    );
    const fanout = flowResult(
      stats.map((s) => s.fanout),
      measuredWindowS,
    );
    const spread = flowResult(
      stats.map((s) => s.spread),
      measuredWindowS,
    );
    const churn = churnResult(stats, measuredWindowS);
    const serverSeconds = perNode.reduce((s, x) => s + x, 0);
    const measured = (relay?.measured ?? 0) + (fanout?.measured ?? 0) + (spread?.measured ?? 0);
    const redisSeconds = redisCpu ? redisCpu.read().reduce((a, b) => a + b, 0) : null;
    const joins = churn ? churn.joinMs.count : 0;
    const cpuResult: CpuResult = {
      serverSeconds: round(serverSeconds, 3),
      perNodeSeconds: perNode.map((x) => round(x, 3)),
      redisSeconds: redisSeconds === null ? null : round(redisSeconds, 3),
      postgresSeconds: postgresSeconds === null ? null : round(postgresSeconds, 3),
      generatorSeconds: round((g.user + g.system) / 1e6, 3),
      perThousandDeliveries: measured ? round((serverSeconds / measured) * 1000, 4) : null,
      perThousandDeliveriesWithRedis:
        measured && redisSeconds !== null ? round(((serverSeconds + redisSeconds) / measured) * 1000, 4) : null,
      perThousandJoins: joins ? round((serverSeconds / joins) * 1000, 4) : null,
    };
    // A worker's error counts include those of its setup.
    const errors: Record<string, number> = {};
    for (const s of stats) for (const [k, v] of Object.entries(s.errors)) errors[k] = (errors[k] ?? 0) + v;

    let soak: ScenarioResult['soak'];
    if (spec.sampleMs) {
      const lags = samples.flatMap((s) => s.lagP99Ms).filter((x): x is number => x !== null);
      soak = { samples, rssSlopeMiBPerMin: rssSlope(samples), maxLagP99Ms: lags.length ? Math.max(...lags) : null };
    }
    return {
      scenario: spec.scenario,
      target: cluster.kind,
      nodes: cluster.nodes.length,
      params: spec.params,
      setup,
      windowS: round(windowS, 2),
      relay,
      fanout,
      spread,
      churn,
      soak,
      cpu: cpuResult,
      rssBytes: { before: rssBefore, after: rssAfter },
      errors,
      maxTimerLagMs: Math.max(...stats.map((s) => s.maxTimerLagMs)),
      profile,
    };
  } finally {
    await pool.close();
  }
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Least-squares slope of the summed RSS over the second half of the samples, MiB per minute. */
export function rssSlope(samples: NodeSample[]): number {
  const half = samples.slice(Math.floor(samples.length / 2));
  if (half.length < 2) return 0;
  const xs = half.map((s) => s.atS / 60);
  const ys = half.map((s) => s.rssBytes.reduce((a, b) => a + b, 0) / 2 ** 20);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  xs.forEach((x, i) => {
    num += (x - mx) * ((ys[i] ?? 0) - my);
    den += (x - mx) ** 2;
  });
  return den ? round(num / den, 2) : 0;
}
