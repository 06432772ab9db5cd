// Idle capacity: as many joined, silent connections as one node holds, and the resident memory
// each one costs that node. Clients are spread over worker threads and 127.0.0.x source addresses.
import { maxOpenFiles, rssBytes, startCpuMeter } from '../procstat.js';
import type { Cluster } from '../cluster/cluster.js';
import { WorkerPool, mergeSetups, type SetupResult } from '../worker/pool.js';
import type { WorkerPlan } from '../worker/messages.js';
import type { ScenarioResult } from '../results.js';
import { round, split, type GeneratorOptions } from './engine.js';
import { sourceAddresses } from '../sources.js';

export interface IdleSpec {
  connections: number;
  roomSize: number;
  /** Time to let the node settle (GC, timers) before its RSS is read. */
  settleMs: number;
}

// File descriptors the generator and the node need besides the connections themselves.
const FD_HEADROOM = 300;

export async function runIdle(spec: IdleSpec, cluster: Cluster, gen: GeneratorOptions): Promise<ScenarioResult> {
  const node = cluster.nodes[0]!;
  const nodeLimit = maxOpenFiles(node.pid);
  const ownLimit = maxOpenFiles('self');
  const cap = Math.min(nodeLimit, ownLimit) - FD_HEADROOM;
  const attempted = Math.min(spec.connections, cap);
  const capReason =
    attempted < spec.connections
      ? `open-files limit: node ${nodeLimit}, generator ${ownLimit} (hard limit of this machine; raise with ulimit -n where allowed)`
      : null;
  if (capReason && !gen.quiet)
    process.stderr.write(`  idle: ${spec.connections} requested, ${attempted} attempted: ${capReason}\n`);

  const rssBefore = rssBytes(node.pid);
  const cpu = startCpuMeter([node.pid]);
  const sources = sourceAddresses(attempted, gen.minSources, gen.clientsPerSource);
  // Filled in two halves with a settle after each. The RSS the second half adds is the marginal
  // cost of a connection: free of what any node grows once under load (V8's young generation,
  // pools, compiled code), which the average over all connections from a cold start includes.
  const halves = [Math.floor(attempted / 2), attempted - Math.floor(attempted / 2)];
  const pools: WorkerPool[] = [];
  const progress = setInterval(() => {
    if (!gen.quiet) process.stderr.write(`  idle/${cluster.kind}: node RSS ${(rssBytes(node.pid) / 2 ** 20).toFixed(0)} MiB\n`);
  }, 5_000);
  try {
    const setups: SetupResult[] = [];
    const rssAt: number[] = [];
    let first = 0;
    for (const count of halves) {
      const parts = split(count, gen.workers);
      const plans: WorkerPlan[] = parts.map((p, i) => ({
        index: i,
        workers: gen.workers,
        target: cluster.kind,
        urls: [node.wsUrl],
        sourceAddresses: sources,
        runId: gen.runId,
        payloadBytes: 0,
        connectConcurrency: gen.connectConcurrency,
        requestTimeoutMs: gen.requestTimeoutMs,
        idle: { firstClient: first + p.first, clients: p.count, roomSize: spec.roomSize },
      }));
      first += count;
      const pool = new WorkerPool(plans);
      pools.push(pool);
      setups.push(await pool.ready(Math.max(120_000, count * 20)));
      await new Promise((resolve) => setTimeout(resolve, spec.settleMs));
      rssAt.push(rssBytes(node.pid));
    }
    clearInterval(progress);
    const [halfSetup, secondSetup] = setups as [SetupResult, SetupResult];
    const [rssHalf, rssAfter] = rssAt as [number, number];
    // The halves ran one after the other.
    const setup = mergeSetups(setups, halfSetup.setupMs + secondSetup.setupMs);
    const serverSeconds = cpu.read()[0] ?? 0;
    const connected = setup.connected;
    return {
      scenario: 'idle',
      target: cluster.kind,
      nodes: 1,
      params: { connections: spec.connections, roomSize: spec.roomSize, sources: sources.length, workers: gen.workers },
      setup,
      windowS: round(setup.setupMs / 1000, 2),
      idle: {
        requested: spec.connections,
        capReason,
        attempted,
        connected,
        failed: setup.failed,
        rssBeforeBytes: rssBefore,
        rssAfterBytes: rssAfter,
        bytesPerConnection: connected ? Math.round((rssAfter - rssBefore) / connected) : null,
        rssHalfBytes: rssHalf,
        marginalBytesPerConnection: secondSetup.connected > 0 ? Math.round((rssAfter - rssHalf) / secondSetup.connected) : null,
        joinsPerS: Math.round(connected / Math.max(0.001, setup.setupMs / 1000)),
      },
      cpu: {
        serverSeconds: round(serverSeconds, 3),
        perNodeSeconds: [round(serverSeconds, 3)],
        redisSeconds: null,
        postgresSeconds: null,
        generatorSeconds: 0,
        perThousandDeliveries: null,
        perThousandJoins: connected ? round((serverSeconds / connected) * 1000, 4) : null,
      },
      rssBytes: { before: [rssBefore], after: [rssAfter] },
      errors: setup.errors,
      maxTimerLagMs: 0,
    };
  } finally {
    clearInterval(progress);
    await Promise.all(pools.map((p) => p.close()));
  }
}
