// What WAIT costs on a Redis Cluster: the project's RedisBus on a private local cluster (3 masters,
// 3 replicas), publishing at a paced rate over many rooms (so every master gets some), with
// REDIS_CLUSTER_WAIT_REPLICAS 1 (each pipeline waits for a replica) against 0 (no WAIT).
//   node --import tsx load-tests/bus/wait-cost.ts [--rate 4000] [--seconds 8] [--rooms 60] [--rounds 3]
// Prints publish latency (publish() to resolved) and the publisher's CPU per message.
import { pino } from 'pino';
import { RedisBus } from '../../signaling-server/src/bus/redis-bus.js';
import { MESSAGE, pacedArgs } from './paced-args.js';
import { startRedisCluster } from '../../signaling-server/test/support/redis-cluster.js';

const {
  rate: RATE,
  seconds: SECONDS,
  rooms: ROOMS,
  rounds: ROUNDS,
} = pacedArgs({ rate: 4000, seconds: 8, rooms: 60, rounds: 3 });
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(seeds: string[], waitReplicas: number, round: number) {
  const bus = await RedisBus.connect({
    clusterNodes: seeds,
    nodeId: `wait-cost-${waitReplicas}-${round}`,
    waitReplicas,
    waitTimeoutMs: 100,
    prefix: `wait${round}:`,
    timeoutMs: 5000,
    retentionMs: 70_000,
    log: pino({ level: 'silent' }),
  });
  const total = RATE * SECONDS;
  const latencies: number[] = [];
  let failed = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const pending: Promise<unknown>[] = [];
  for (let sent = 0; sent < total;) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE));
    for (; sent < due; sent++) {
      const at = performance.now();
      pending.push(
        bus.publish(`r${sent % ROOMS}`, MESSAGE).then(
          () => latencies.push(performance.now() - at),
          () => failed++,
        ),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  const cpu = process.cpuUsage(cpuBefore);
  await bus.close();
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), cpuUs: (cpu.user + cpu.system) / total, failed };
}

const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
try {
  const rows = new Map<number, { p50: number; p99: number; cpuUs: number; failed: number }[]>([
    [0, []],
    [1, []],
  ]);
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first: the machine warms up and other tenants come and go.
    for (const wait of round % 2 === 0 ? [0, 1] : [1, 0]) rows.get(wait)!.push(await measure(cluster.seeds, wait, round));
  }
  process.stdout.write(`${RATE} publishes/s for ${SECONDS} s over ${ROOMS} rooms on 3 masters, ${ROUNDS} rounds\n`);
  process.stdout.write(
    '| WAIT replicas | publish p50 ms | publish p99 ms | publisher CPU µs/message | failed |\n|---|---|---|---|---|\n',
  );
  for (const [wait, results] of rows) {
    process.stdout.write(
      `| ${wait} | ${median(results.map((r) => r.p50)).toFixed(2)} | ${median(results.map((r) => r.p99)).toFixed(2)} | ${median(
        results.map((r) => r.cpuUs),
      ).toFixed(1)} | ${results.reduce((n, r) => n + r.failed, 0)} |\n`,
    );
  }
} finally {
  await cluster.stop();
}
