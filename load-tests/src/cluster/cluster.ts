// The systems under test, each started fresh for a run: the project's nodes (own Postgres
// database, own Redis prefix), the Socket.IO baseline (own Redis key prefix), and two floors that
// show what a delivery costs before any server logic: a bare uWS relay of one node, and two bare
// uWS nodes relaying through Redis.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startNodeProcess, type NodeProcess } from './node-process.js';

export type TargetKind = 'project' | 'baseline' | 'floor' | 'floor2';

export interface Cluster {
  readonly kind: TargetKind;
  readonly nodes: NodeProcess[];
  /** Pids of the Postgres backends serving this cluster's database (project only). */
  postgresPids?(): Promise<number[]>;
  /** The Redis servers this cluster alone uses, when it has its own (the bus scenario); else the shared one is measured. */
  redisPids?: number[];
  stop(): Promise<void>;
}

export interface ClusterOptions {
  repoRoot: string;
  runId: string;
  nodeCount: number;
  logDir: string;
  redisUrl: string;
  postgresUrl: string;
  logLevel: string;
  /** Extra environment for the project's nodes (KEY=VALUE from the command line). */
  extraEnv: Record<string, string>;
  /** Open the V8 inspector on a loopback port so that measured windows can be profiled. */
  isInspectable?: boolean | undefined;
}

export function projectEntry(repoRoot: string): string {
  return join(repoRoot, 'signaling-server', 'dist', 'main.js');
}

function databaseUrl(serverUrl: string, db: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${db}`;
  return u.toString();
}

async function withAdmin<T>(serverUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function inspectArgs(opts: ClusterOptions): string[] {
  return opts.isInspectable ? ['--inspect=127.0.0.1:0'] : [];
}

async function startAll(count: number, start: (i: number) => Promise<NodeProcess>): Promise<NodeProcess[]> {
  const nodes: NodeProcess[] = [];
  try {
    // One after the other: the first node migrates the fresh database, the others find it done.
    for (let i = 0; i < count; i++) nodes.push(await start(i));
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop(2_000)));
    throw err;
  }
  return nodes;
}

export async function startProjectCluster(opts: ClusterOptions): Promise<Cluster> {
  const entry = projectEntry(opts.repoRoot);
  if (!existsSync(entry)) throw new Error(`${entry} not found: run \`npm run build\` first`);
  mkdirSync(opts.logDir, { recursive: true });
  const dbName = `bench_${opts.runId}`;
  await withAdmin(opts.postgresUrl, (c) => c.query(`CREATE DATABASE "${dbName}"`));
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl(opts.postgresUrl, dbName),
    REDIS_URL: opts.redisUrl,
    REDIS_PREFIX: `bench:${opts.runId}:`,
    LOG_LEVEL: opts.logLevel,
    PORT: '0',
    ...opts.extraEnv,
  };
  const dropDb = () =>
    withAdmin(opts.postgresUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`)).catch(() => undefined);
  try {
    const nodes = await startAll(opts.nodeCount, (i) =>
      startNodeProcess({
        name: `project-${i + 1}`,
        args: [...inspectArgs(opts), entry],
        env: { ...env, NODE_ID: `bench-${opts.runId}-${i + 1}` },
        logFile: join(opts.logDir, `project-${i + 1}.log`),
        wsPath: '/ws',
        cwd: opts.repoRoot,
      }),
    );
    return {
      kind: 'project',
      nodes,
      postgresPids: () =>
        withAdmin(opts.postgresUrl, async (c) => {
          const r = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [dbName]);
          return r.rows.map((row) => row.pid);
        }).catch(() => []),
      async stop() {
        await Promise.all(nodes.map((n) => n.stop()));
        await dropDb();
      },
    };
  } catch (err) {
    await dropDb();
    throw err;
  }
}

/** Nodes of one of load-tests' own TypeScript servers, each given `envOf(i)` on top of PORT=0. */
async function startScriptCluster(
  kind: TargetKind,
  opts: ClusterOptions,
  script: string,
  wsPath: string,
  envOf: (i: number) => Record<string, string>,
): Promise<Cluster> {
  mkdirSync(opts.logDir, { recursive: true });
  const server = join(opts.repoRoot, 'load-tests', script);
  const nodes = await startAll(opts.nodeCount, (i) =>
    startNodeProcess({
      name: `${kind}-${i + 1}`,
      args: ['--import', 'tsx', ...inspectArgs(opts), server],
      env: { PORT: '0', ...envOf(i) },
      logFile: join(opts.logDir, `${kind}-${i + 1}.log`),
      wsPath,
      cwd: opts.repoRoot,
    }),
  );
  return {
    kind,
    nodes,
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

export function startBaselineCluster(opts: ClusterOptions): Promise<Cluster> {
  return startScriptCluster('baseline', opts, 'baseline/server.ts', '/', (i) => ({
    NODE_ID: `baseline-${opts.runId}-${i + 1}`,
    REDIS_URL: opts.redisUrl,
    REDIS_PREFIX: `bench:${opts.runId}:sio`,
  }));
}

export async function startFloorCluster(opts: ClusterOptions): Promise<Cluster> {
  // The floor has no bus: clients on two of its nodes could not reach each other.
  if (opts.nodeCount !== 1) throw new Error('the floor target runs one node only (--nodes 1)');
  mkdirSync(opts.logDir, { recursive: true });
  const node = await startNodeProcess({
    name: 'floor-1',
    args: ['--import', 'tsx', ...inspectArgs(opts), join(opts.repoRoot, 'load-tests', 'floor', 'server.ts')],
    env: { PORT: '0' },
    logFile: join(opts.logDir, 'floor-1.log'),
    wsPath: '/ws',
    cwd: opts.repoRoot,
  });
  return {
    kind: 'floor',
    nodes: [node],
    async stop() {
      await node.stop();
    },
  };
}

/** The two-node floor: bare uWS nodes that relay through Redis (load-tests/floor/two-node-server.ts). */
export function startFloor2Cluster(opts: ClusterOptions): Promise<Cluster> {
  return startScriptCluster('floor2', opts, 'floor/two-node-server.ts', '/ws', (i) => ({
    NODE_ID: `f${i + 1}`,
    REDIS_URL: opts.redisUrl,
    REDIS_PREFIX: `bench:${opts.runId}:floor2:`,
  }));
}

export function startCluster(kind: TargetKind, opts: ClusterOptions): Promise<Cluster> {
  if (kind === 'floor') return startFloorCluster(opts);
  if (kind === 'floor2') return startFloor2Cluster(opts);
  return kind === 'project' ? startProjectCluster(opts) : startBaselineCluster(opts);
}
