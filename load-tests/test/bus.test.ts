// Tiny runs of the bus scenario, each on its own private Redis or 3-master Redis Cluster: every
// publish reaches its subscriber and every publish is counted on the master that served it.
// They prove the scenario's accounting, not speed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import type {} from '../../signaling-server/test/support/global-setup.js';
import { runBus, type BusSpec } from '../src/scenarios/bus.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const runId = `bus${process.pid}${Date.now() % 100000}`;
const spec: Omit<BusSpec, 'redis' | 'load'> = {
  rate: 300,
  rooms: 30,
  masters: 3,
  replicasPerMaster: 0,
  warmupMs: 200,
  durationMs: 1000,
  drainMs: 5000,
  payloadBytes: 16,
};

describe('bus scenario', () => {
  it('raw: every publish reaches the subscriber on one Redis and on a 3-master cluster, whose masters share the 30 rooms', async () => {
    const single = await runBus({ ...spec, redis: 'single', load: 'raw' });
    expect(single.sent).toBeGreaterThan(0);
    expect(single.delivered).toBe(single.sent);
    expect(single.shards).toHaveLength(1);
    expect(single.shards[0]!.publishes).toBe(single.sent);

    const cluster = await runBus({ ...spec, redis: 'cluster', load: 'raw' });
    expect(cluster.sent).toBeGreaterThan(0);
    expect(cluster.delivered).toBe(cluster.sent);
    expect(cluster.errors).toEqual({});
    expect(cluster.shards).toHaveLength(3);
    for (const shard of cluster.shards) expect(shard.publishes).toBeGreaterThan(0);
    expect(cluster.shards.reduce((n, s) => n + s.publishes, 0)).toBe(cluster.sent);
    expect(cluster.busiestOverLeast).toBeGreaterThanOrEqual(1);
  });

  it("project: the project's nodes on a private Redis deliver every signal, and their publishes are counted there", async () => {
    const logDir = mkdtempSync(join(tmpdir(), 'load-bus-'));
    try {
      const result = await runBus(
        { ...spec, rooms: 4, rate: 40, redis: 'single', load: 'project' },
        {
          cluster: {
            repoRoot: REPO,
            runId,
            nodeCount: 2,
            logDir,
            postgresUrl: inject('databaseUrl'),
            logLevel: 'info',
            extraEnv: { HOST: '127.0.0.1' },
          },
          generator: {
            workers: 1,
            minSources: 2,
            clientsPerSource: 50,
            payloadBytes: 16,
            connectConcurrency: 4,
            requestTimeoutMs: 5000,
            runId,
            redisUrl: inject('redisUrl'),
            quiet: true,
          },
        },
      );
      expect(result.sent).toBeGreaterThan(0);
      expect(result.delivered).toBe(result.sent);
      expect(result.lost).toBe(0);
      expect(result.errors).toEqual({});
      expect(result.shards[0]!.publishes).toBeGreaterThan(0);
      expect(result.perThousandDeliveries).toBeGreaterThan(0);
    } finally {
      rmSync(logDir, { recursive: true, force: true });
    }
  });
});
