// Starts real signaling nodes as child processes (the built signaling-server/dist/main.js) against
// the test Postgres and Redis, each test with its own database and Redis channel prefix.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { inject } from 'vitest';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export const testDatabaseUrl = (): string => inject('databaseUrl');
export const testRedisUrl = (): string => inject('redisUrl');
/** Set by `npm run test:redis-cluster`: nodes meant for the shared test Redis get this cluster. */
const testRedisClusterNodes = (): string => inject('redisClusterNodes');
export const uniqueName = (prefix: string): string => `${prefix}${randomBytes(5).toString('hex')}`;

/** A port nothing listens on right now, for a node that must come back on the same port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Creates an empty database on the test server (or the server of `serverUrl`) and returns its URL. */
export async function createTestDatabase(serverUrl = testDatabaseUrl()): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  const name = uniqueName('sig_test_');
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface NodeOptions {
  databaseUrl?: string;
  redisUrl?: string;
  redisPrefix?: string;
  nodeId?: string;
  port?: number;
  env?: Record<string, string>;
  /** How long to wait for `listening` (an embedded node creates its database first: slow). */
  startTimeoutMs?: number;
}

export interface RunningNode {
  id: string;
  port: number;
  url: string;
  httpUrl: string;
  process: ChildProcess;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  /** What the node wrote on stderr so far (not the log: that is stdout). */
  stderr(): string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  kill(): Promise<void>;
}

const running = new Set<RunningNode>();

/** The shared test Redis, or the test Redis Cluster in its place; a test's own Redis as it is. */
function redisEnv(redisUrl: string | undefined): Record<string, string> {
  if (!redisUrl) return {};
  const clusterNodes = testRedisClusterNodes();
  if (clusterNodes && redisUrl === testRedisUrl()) return { REDIS_CLUSTER_NODES: clusterNodes };
  return { REDIS_URL: redisUrl };
}

function nodeEnv(opts: NodeOptions, id: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    HOST: '127.0.0.1',
    PORT: String(opts.port ?? 0),
    NODE_ID: id,
    LOG_LEVEL: 'info',
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
    ...redisEnv(opts.redisUrl),
    ...(opts.redisPrefix ? { REDIS_PREFIX: opts.redisPrefix } : {}),
    ...opts.env,
  };
}

export interface FailedStart {
  code: number | null;
  stderr: string;
  /** Every log line, parsed. */
  logs: Record<string, unknown>[];
}

/** Starts a node that is expected to refuse to start: resolves when it exits, rejects if it listens. */
export async function startNodeExpectingFailure(opts: NodeOptions = {}): Promise<FailedStart> {
  const id = opts.nodeId ?? uniqueName('node-');
  const child = spawn(process.execPath, [MAIN], { env: nodeEnv(opts, id), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timeoutMs = opts.startTimeoutMs ?? 20_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  const logs = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  if (logs.some((l) => l.msg === 'listening')) throw new Error(`node ${id} started listening though it should have refused`);
  if (code === null) throw new Error(`node ${id} neither started nor exited within ${timeoutMs} ms\n${stderr}`);
  return { code, stderr, logs };
}

export async function startNode(opts: NodeOptions = {}): Promise<RunningNode> {
  const id = opts.nodeId ?? uniqueName('node-');
  const env = nodeEnv(opts, id);
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
    const timer = setTimeout(
      () => reject(new Error(`node ${id} did not start in ${startTimeoutMs} ms\n${stderr}`)),
      startTimeoutMs,
    );
    let pending = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'listening') {
            clearTimeout(timer);
            resolve(entry.port as number);
          }
        } catch {
          logs.push({ raw: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node ${id} exited with ${code} before listening\n${stderr}`));
    });
  });
  const node: RunningNode = {
    id,
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    process: child,
    logs,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      running.delete(node);
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      running.delete(node);
    },
  };
  running.add(node);
  return node;
}

/** A value of the node's /metrics (the first series with that name and no labels, or the given label text). */
export async function metric(node: RunningNode, series: string): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}

/** Polls a metric until `isDone` holds (there is no event to await for a node's internal state). */
export async function untilMetric(node: RunningNode, series: string, isDone: (v: number) => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await metric(node, series);
    if (isDone(value)) return value;
    if (Date.now() > deadline) throw new Error(`${series} on ${node.id} is still ${value}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Kills every node a test started and did not stop; call from afterEach/afterAll. */
export async function killAllNodes(): Promise<void> {
  await Promise.all([...running].map((n) => n.kill()));
}

/** Two (or more) nodes on a fresh database and a private Redis prefix. */
export async function startCluster(count: number, opts: Omit<NodeOptions, 'nodeId'> = {}) {
  const databaseUrl = opts.databaseUrl ?? (await createTestDatabase());
  const redisPrefix = opts.redisPrefix ?? `${uniqueName('t')}:`;
  const common = { ...opts, databaseUrl, redisUrl: opts.redisUrl ?? testRedisUrl(), redisPrefix };
  // Start one first so it runs the migrations; the rest start together.
  const first = await startNode(common);
  const rest = await Promise.all(Array.from({ length: count - 1 }, () => startNode(common)));
  return { nodes: [first, ...rest], databaseUrl, redisPrefix, options: common };
}
