// A private Redis Cluster for tests: masters and replicas as redis-server child processes on free
// loopback ports, each with its own temporary directory (cluster config file), no persistence,
// joined with `redis-cli --cluster create`. A master can be killed (SIGKILL) to make a replica take
// its slots over, or killed and started again in place, empty. Never the shared Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, spawnRedisServer } from './throwaway-redis.js';

export interface RedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** cluster-node-timeout: how long a master may be unreachable before a replica takes over. */
  nodeTimeoutMs?: number;
}

export interface ClusterNode {
  port: number;
  role: 'master' | 'replica';
}

export interface LocalRedisCluster {
  /** `127.0.0.1:<port>` of every node, for REDIS_CLUSTER_NODES or ioredis's Cluster. */
  seeds: string[];
  /** Every node started, with the role it had at start (killMaster() updates it). */
  nodes: ClusterNode[];
  /** The ports of the nodes that serve slots now, as the cluster itself says. */
  masterPorts(): Promise<number[]>;
  /**
   * SIGKILLs a master (the given one, or the first), then resolves once a replica has taken over its
   * slots and every live node says cluster_state:ok. Resolves with the killed port.
   */
  killMaster(port?: number): Promise<number>;
  /**
   * SIGKILLs a master and starts it again on its port with its cluster config file and nothing
   * else (no persistence): it serves its slots again, empty, as a Redis Cluster without replicas
   * does after a master's restart. Resolves once every node says cluster_state:ok.
   */
  restartMaster(port: number): Promise<void>;
  /**
   * SIGSTOPs a node (SIGCONT with resume()): its sockets stay open and the kernel still takes the
   * bytes sent to it, but nothing answers, as with a paused VM or a path that black-holes it.
   */
  pause(port: number): void;
  resume(port: number): void;
  stop(): Promise<void>;
}

interface Server {
  port: number;
  dir: string;
  proc: ChildProcess;
  exited: Promise<void>;
  output: () => string;
}

const HOST = '127.0.0.1';
const SLOTS = 16384;

/** Polls `check` (there is no event to await for a server's cluster state) until it holds. */
async function until(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs one command on one node over a short-lived connection. */
async function ask(port: number, ...args: string[]): Promise<unknown> {
  const conn = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  conn.on('error', () => {});
  try {
    await conn.connect();
    return await conn.call(args[0]!, ...args.slice(1));
  } finally {
    conn.disconnect();
  }
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(\\S+)`, 'm').exec(info)?.[1];
}

/** Starts a cluster-enabled redis-server; `at` starts it again where an earlier one ran. */
async function startServer(nodeTimeoutMs: number, at?: { port: number; dir: string }): Promise<Server> {
  const port = at?.port ?? (await freePort());
  const dir = at?.dir ?? (await mkdtemp(join(tmpdir(), `redis-cluster-${port}-`)));
  const { proc, output } = spawnRedisServer(port, [
    '--dir',
    dir,
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(dir, 'nodes.conf'),
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    // CLUSTER SLOTS lists a replica only once its replication offset is not 0; masters ping their
    // replicas (which moves the offset) every 10 s by default, every second here.
    '--repl-ping-replica-period',
    '1',
  ]);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const server = { port, dir, proc, exited, output };
  try {
    await until(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`redis-server on ${port} exited at start:\n${output()}`);
        return (await ask(port, 'PING')) === 'PONG';
      },
      `redis-server on ${port} answering PING`,
      10_000,
    );
  } catch (err) {
    await stopServer(server);
    throw err;
  }
  return server;
}

async function stopServer(server: Server, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill(signal);
  const timer = setTimeout(() => server.proc.kill('SIGKILL'), 5000);
  await server.exited;
  clearTimeout(timer);
  await rm(server.dir, { recursive: true, force: true });
}

function runRedisCli(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
    proc.once('error', reject);
    proc.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`redis-cli ${args.join(' ')} exited with ${code}:\n${output}`)),
    );
  });
}

/** True when the node says the cluster is ok, with every slot served. */
async function isHealthy(port: number): Promise<boolean> {
  const info = String(await ask(port, 'CLUSTER', 'INFO'));
  return infoField(info, 'cluster_state') === 'ok' && infoField(info, 'cluster_slots_ok') === String(SLOTS);
}

/** Ports of the masters that serve slots and are not marked failed, as CLUSTER NODES says. */
async function mastersServingSlots(port: number): Promise<number[]> {
  const nodes = String(await ask(port, 'CLUSTER', 'NODES'));
  const ports: number[] = [];
  for (const line of nodes.split('\n')) {
    const fields = line.split(' ');
    // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
    if (fields.length < 9 || !fields[2]!.includes('master') || fields[2]!.includes('fail')) continue;
    ports.push(Number(fields[1]!.split('@')[0]!.split(':')[1]));
  }
  return ports.sort((a, b) => a - b);
}

export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<LocalRedisCluster> {
  const masters = opts.masters ?? 3;
  const replicasPerMaster = opts.replicasPerMaster ?? 1;
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 1000;
  const servers: Server[] = [];
  const stop = async () => {
    await Promise.all(servers.splice(0).map((s) => stopServer(s)));
  };
  try {
    const count = masters * (1 + replicasPerMaster);
    // Every server that did start is kept for stop(), also when another one failed to.
    const started = await Promise.allSettled(Array.from({ length: count }, () => startServer(nodeTimeoutMs)));
    for (const result of started) if (result.status === 'fulfilled') servers.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    // redis-cli makes the first `masters` nodes masters and the rest their replicas.
    await runRedisCli([
      '--cluster',
      'create',
      ...servers.map((s) => `${HOST}:${s.port}`),
      '--cluster-replicas',
      String(replicasPerMaster),
      '--cluster-yes',
    ]);
    await until(
      async () => (await Promise.all(servers.map((s) => isHealthy(s.port)))).every(Boolean),
      'cluster_state:ok on every node',
      30_000,
    );
    // Replicas must have synced before a master can be killed without losing what it held.
    await until(
      async () =>
        (await mastersServingSlots(servers[0]!.port)).length === masters &&
        (await replicasInSync(servers)) &&
        (await Promise.all(servers.map((s) => listsReplicas(s.port, replicasPerMaster)))).every(Boolean),
      'every replica in sync and in CLUSTER SLOTS',
      30_000,
    );
  } catch (err) {
    const output = servers.map((s) => `-- ${s.port}\n${s.output()}`).join('\n');
    await stop();
    throw new Error(`${(err as Error).message}\n${output}`);
  }

  const nodes: ClusterNode[] = servers.map((s, i) => ({ port: s.port, role: i < masters ? 'master' : 'replica' }));
  const live = () => servers.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null);
  const masterPorts = async () => mastersServingSlots(live()[0]!.port);

  const killMaster = async (port?: number) => {
    const target = port ?? (await masterPorts())[0];
    const server = servers.find((s) => s.port === target);
    if (!server || !(await masterPorts()).includes(target!)) throw new Error(`redis cluster: ${target} is not a live master`);
    server.proc.kill('SIGKILL');
    await server.exited;
    servers.splice(servers.indexOf(server), 1);
    await rm(server.dir, { recursive: true, force: true });
    nodes.splice(
      nodes.findIndex((n) => n.port === target),
      1,
    );
    await until(
      async () => {
        // Until the others mark it failed, the dead master still counts as one.
        const ports = await masterPorts();
        if (ports.includes(target!) || ports.length !== masters) return false;
        return (await Promise.all(live().map((s) => isHealthy(s.port)))).every(Boolean);
      },
      `a replica taking over from ${target}`,
      30_000,
    );
    const now = await masterPorts();
    for (const n of nodes) n.role = now.includes(n.port) ? 'master' : 'replica';
    return target!;
  };

  const restartMaster = async (port: number) => {
    const server = servers.find((s) => s.port === port);
    if (!server || !(await masterPorts()).includes(port)) throw new Error(`redis cluster: ${port} is not a live master`);
    server.proc.kill('SIGKILL');
    await server.exited;
    servers.splice(servers.indexOf(server), 1, await startServer(nodeTimeoutMs, server));
    await until(
      async () => (await Promise.all(live().map((s) => isHealthy(s.port)))).every(Boolean),
      `${port} serving its slots again`,
      30_000,
    );
  };

  const signal = (port: number, sig: NodeJS.Signals) => {
    const server = servers.find((s) => s.port === port);
    if (!server) throw new Error(`redis cluster: no node on ${port}`);
    server.proc.kill(sig);
  };
  // A paused node would hold stop() up: it is let go first.
  const stopAll = async () => {
    for (const s of servers) s.proc.kill('SIGCONT');
    await stop();
  };

  return {
    seeds: servers.map((s) => `${HOST}:${s.port}`),
    nodes,
    masterPorts,
    killMaster,
    restartMaster,
    pause: (port) => signal(port, 'SIGSTOP'),
    resume: (port) => signal(port, 'SIGCONT'),
    stop: stopAll,
  };
}

/** Every replica has its link to its master up and has loaded the master's data. */
async function replicasInSync(servers: Server[]): Promise<boolean> {
  const infos = await Promise.all(servers.map(async (s) => String(await ask(s.port, 'INFO', 'replication'))));
  return infos.every(
    (info) =>
      infoField(info, 'role') === 'master' ||
      (infoField(info, 'master_link_status') === 'up' && infoField(info, 'master_sync_in_progress') === '0'),
  );
}

/** The node's CLUSTER SLOTS (what clients learn the replicas from) names this many replicas per range. */
async function listsReplicas(port: number, replicas: number): Promise<boolean> {
  const ranges = (await ask(port, 'CLUSTER', 'SLOTS')) as unknown[][];
  return ranges.length > 0 && ranges.every((range) => range.length - 3 === replicas);
}
