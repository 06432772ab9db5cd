// Tiny runs of the scenarios that compare the project with its floors and with itself: the
// two-node floor (bare uWS nodes relaying through Redis) and the spread scenario (the same rooms
// over 2 nodes and over all of them). They prove every message arrives where it should, not speed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type {} from '../../signaling-server/test/support/global-setup.js';
import { startFloor2Cluster, startProjectCluster, type Cluster } from '../src/cluster/cluster.js';
import { runLoad } from '../src/scenarios/engine.js';
import { PRESETS, spreadSpec } from '../src/presets.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const runId = `sprd${process.pid}${Date.now() % 100000}`;

const dirs: string[] = [];
const clusters: Cluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.stop()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function clusterOptions(nodeCount: number, sub: string) {
  const logDir = mkdtempSync(join(tmpdir(), 'load-smoke-'));
  dirs.push(logDir);
  return {
    repoRoot: REPO,
    runId: `${runId}${sub}`,
    nodeCount,
    logDir,
    redisUrl: inject('redisUrl'),
    postgresUrl: inject('databaseUrl'),
    logLevel: 'info',
    extraEnv: { HOST: '127.0.0.1' },
  };
}

const generator = (sub: string) => ({
  workers: 1,
  minSources: 2,
  clientsPerSource: 50,
  payloadBytes: 16,
  connectConcurrency: 8,
  requestTimeoutMs: 5000,
  runId: `${runId}${sub}`,
  redisUrl: inject('redisUrl'),
  quiet: true,
});

describe('scenarios against the floors and across nodes', () => {
  it('the two-node floor relays every signal and fans out every broadcast between its two nodes, through Redis', async () => {
    const floor = await startFloor2Cluster(clusterOptions(2, 'f'));
    clusters.push(floor);
    const result = await runLoad(
      {
        scenario: 'fanout',
        warmupMs: 200,
        durationMs: 1000,
        drainMs: 5000,
        relay: { pairs: 3, ratePerPair: 10 },
        fanout: { rooms: 2, roomSize: 4, ratePerRoom: 10 },
        params: {},
      },
      floor,
      generator('f'),
    );
    expect(result.nodes).toBe(2);
    expect(result.setup).toMatchObject({ connected: 14, failed: 0 });
    for (const flow of [result.relay!, result.fanout!]) {
      expect(flow.delivered).toBeGreaterThan(0);
      expect(flow.delivered).toBe(flow.expected);
      expect(flow.outOfOrder).toBe(0);
    }
    expect(result.errors).toEqual({});
    expect(result.cpu.perThousandDeliveriesWithRedis).toBeGreaterThan(0);
  });

  it('spread delivers every signal to member 1 alone, with the rooms over 2 nodes and over all 3', async () => {
    const cluster = await startProjectCluster(clusterOptions(3, 's'));
    clusters.push(cluster);
    const settings = {
      ...PRESETS.small!,
      warmupS: 0.2,
      durationS: 1,
      drainS: 5,
      spreadRooms: 4,
      spreadRoomSize: 4,
      spreadRate: 40,
      spreadNodes: 3,
      payload: 16,
    };
    for (const span of [2, 3]) {
      const result = await runLoad(spreadSpec(settings, span), cluster, generator(`s${span}`));
      expect(result.params).toMatchObject({ span, nodes: 3, rooms: 4, roomSize: 4 });
      expect(result.setup).toMatchObject({ connected: 16, failed: 0 });
      expect(result.spread!.delivered).toBeGreaterThan(0);
      expect(result.spread!.delivered).toBe(result.spread!.sent);
      expect(result.spread!.lost).toBe(0);
      // A signal that reached any member but member 1 would be counted as misrouted here.
      expect(result.errors).toEqual({});
    }
  });
});
