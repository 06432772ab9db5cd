// One tiny run of the load generator against one real node: proves the generator, its worker
// threads and its accounting work end to end. The load tests themselves are not part of `npm test`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type {} from '../../signaling-server/test/support/global-setup.js';
import { startFloorCluster, startProjectCluster, type Cluster } from '../src/cluster/cluster.js';
import { runLoad } from '../src/scenarios/engine.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

describe('load generator smoke run', () => {
  let cluster: Cluster;
  let logDir: string;
  const runId = `smoke${process.pid}${Date.now() % 100000}`;
  const clusterOptions = (dir: string) => ({
    repoRoot: REPO,
    runId,
    nodeCount: 1,
    logDir: dir,
    redisUrl: inject('redisUrl'),
    postgresUrl: inject('databaseUrl'),
    logLevel: 'info',
    extraEnv: { HOST: '127.0.0.1' },
  });
  const generator = {
    workers: 1,
    minSources: 2,
    clientsPerSource: 50,
    payloadBytes: 16,
    connectConcurrency: 4,
    requestTimeoutMs: 5000,
    runId,
    redisUrl: inject('redisUrl'),
    quiet: true,
  };

  beforeAll(async () => {
    logDir = mkdtempSync(join(tmpdir(), 'load-smoke-'));
    cluster = await startProjectCluster(clusterOptions(logDir));
  });

  afterAll(async () => {
    await cluster?.stop();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('relays every signal of two pairs for a second, and measures latency and server CPU', async () => {
    const result = await runLoad(
      {
        scenario: 'relay',
        warmupMs: 200,
        durationMs: 1000,
        drainMs: 5000,
        relay: { pairs: 2, ratePerPair: 20 },
        params: {},
      },
      cluster,
      generator,
    );
    expect(result.setup).toMatchObject({ connected: 4, failed: 0 });
    expect(result.relay!.delivered).toBeGreaterThan(0);
    expect(result.relay!.lost).toBe(0);
    expect(result.relay!.delivered).toBe(result.relay!.sent);
    expect(result.relay!.latencyMs.count).toBeGreaterThan(0);
    expect(result.relay!.latencyMs.p99).toBeGreaterThan(0);
    expect(result.cpu.serverSeconds).toBeGreaterThanOrEqual(0);
    expect(result.errors).toEqual({});
  });

  it('relays every signal and fans out every broadcast on the floor server, the bare relay the benchmarks measure against', async () => {
    const floorLogs = mkdtempSync(join(tmpdir(), 'load-floor-'));
    const floor = await startFloorCluster(clusterOptions(floorLogs));
    try {
      const result = await runLoad(
        {
          scenario: 'fanout',
          warmupMs: 200,
          durationMs: 1000,
          drainMs: 5000,
          relay: { pairs: 2, ratePerPair: 10 },
          fanout: { rooms: 2, roomSize: 3, ratePerRoom: 10 },
          params: {},
        },
        floor,
        generator,
      );
      expect(result.setup).toMatchObject({ connected: 10, failed: 0 });
      for (const flow of [result.relay!, result.fanout!]) {
        expect(flow.delivered).toBeGreaterThan(0);
        expect(flow.delivered).toBe(flow.expected);
        expect(flow.outOfOrder).toBe(0);
      }
      expect(result.errors).toEqual({});
    } finally {
      await floor.stop();
      rmSync(floorLogs, { recursive: true, force: true });
    }
  });
});
