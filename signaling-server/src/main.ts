// Starts one signaling node: configuration, database and migrations, bus, domain, HTTP/WebSocket
// server, heartbeats and the reaper, wired by constructor injection, and stops it on a signal.
import { fileURLToPath } from 'node:url';
import { createTokenVerifier } from './auth/token-verifier.js';
import { RedisBus } from './bus/redis-bus.js';
import { MemoryHub } from './bus/memory-bus.js';
import { MemoryMailbox, RedisMailbox, type ParticipantMailbox } from './bus/mailbox.js';
import type { RoomBus } from './bus/bus.js';
import { drain } from './cluster/drain.js';
import { Heartbeat } from './cluster/heartbeat.js';
import { isInCluster } from './cluster/in-cluster.js';
import type { PodWatcher } from './cluster/pod-watcher.js';
import { Reaper } from './cluster/reaper.js';
import { Settler } from './cluster/settler.js';
import { ConfigError, drainCloseReserveMs, loadConfig, timerWarnings, type Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics } from './metrics.js';
import { RoomService } from './rooms/room-service.js';
import { openDatabase } from './store/database.js';
import { migrateToLatest } from './store/migrations.js';
import { PostgresStore } from './store/postgres-store.js';
import { SignalingServer } from './transport/server.js';
import { StaticFiles } from './transport/static-files.js';
import { loadUws } from './transport/uws.js';

async function start(config: Config, log: Logger) {
  const { uws, isNative } = loadUws(config.ALLOW_UWS_FALLBACK);
  if (!isNative) log.warn('running on the uWebSockets.js JavaScript fallback (ALLOW_UWS_FALLBACK): expect far lower throughput');
  const metrics = createMetrics();
  for (const warning of timerWarnings(config)) log.warn(warning);

  const database = await openDatabase({
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    timeoutMs: config.DB_TIMEOUT_MS,
    poolSize: config.DB_POOL_SIZE,
    synchronousCommit: config.DB_SYNCHRONOUS_COMMIT,
    nodeId: config.NODE_ID,
    lockTimeoutMs: config.DB_LOCK_TIMEOUT_MS,
    idleInTransactionTimeoutMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    onConnectionError: (err) => {
      metrics.backgroundErrors.labels('db-connection').inc();
      log.warn({ err }, 'a database connection failed; the next query opens another');
    },
  });
  const applied = await migrateToLatest(database.db);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  let settler: Settler | null = null;
  const store = new PostgresStore(database.db, (op, seconds) => metrics.dbQuerySeconds.labels(op).observe(seconds), {
    livenessDb: database.livenessDb,
    onCommitUnknown: (change) => settler?.settle(change),
  });

  let bus: RoomBus;
  let mailbox: ParticipantMailbox;
  if (config.REDIS_URL) {
    const redisBus = await RedisBus.connect({
      url: config.REDIS_URL,
      prefix: config.REDIS_PREFIX,
      timeoutMs: config.REDIS_TIMEOUT_MS,
      log,
      onStatus: (isUp) => metrics.busUp.set(isUp ? 1 : 0),
    });
    bus = redisBus;
    mailbox = new RedisMailbox(redisBus.client, config.REDIS_PREFIX);
  } else {
    bus = new MemoryHub().createBus();
    mailbox = new MemoryMailbox();
  }
  metrics.busUp.set(bus.isUp() ? 1 : 0);
  if (database.isEmbedded || !config.REDIS_URL) {
    log.warn(
      { embeddedDatabase: database.isEmbedded, inProcessBus: !config.REDIS_URL, dataDir: config.DATA_DIR },
      'running embedded: this node cannot be scaled out; set DATABASE_URL and REDIS_URL to run a cluster',
    );
  }
  const verifier = createTokenVerifier({
    secret: config.AUTH_JWT_SECRET,
    publicKeyPem: config.AUTH_JWT_PUBLIC_KEY,
    jwksUrl: config.AUTH_JWKS_URL,
    jwksTimeoutMs: config.DB_TIMEOUT_MS,
  });
  if (!verifier) log.warn('no token secret or key configured: anonymous joins are allowed');

  let isDraining = false;
  let server: SignalingServer | null = null;
  const rooms = new RoomService({
    nodeId: config.NODE_ID,
    store,
    bus,
    fanout: {
      publish: (topic, frame) => server?.publish(topic, frame),
      subscriberCount: (topic) => server?.subscriberCount(topic) ?? 0,
    },
    metrics,
    log,
    resumeGraceMs: config.RESUME_GRACE_MS,
    maxRoomsPerConnection: config.MAX_ROOMS_PER_CONNECTION,
    maxParticipantsPerRoom: config.MAX_PARTICIPANTS_PER_ROOM,
    maxMetaBytes: config.MAX_META_BYTES,
    verifier,
    mailbox,
    maxGapSignals: config.MAX_GAP_SIGNALS,
    handoverWaitMs: config.HANDOVER_WAIT_MS,
  });

  // A previous process with this NODE_ID held sockets that are gone now: free its participants
  // before announcing ourselves alive, so a restart never resurrects them.
  const announce = (d: Parameters<RoomService['announceDeparture']>[0]) => rooms.announceDeparture(d);
  settler = new Settler({ store, announce, log, metrics, retryMs: 1000 });
  const released = await store.evictNode(config.NODE_ID, announce);
  if (released.length > 0) log.info({ participants: released.length }, 'freed the participants of a previous run of this node');
  const heartbeat = new Heartbeat({
    store,
    nodeId: config.NODE_ID,
    intervalMs: config.NODE_HEARTBEAT_MS,
    log,
    metrics,
    isDraining: () => isDraining,
    // 1012 as in a drain: the clients reconnect and re-join (resuming what the cluster still holds).
    onJudgedDead: () => server?.closeAll(1012, 'node restarting'),
  });
  await heartbeat.register();
  heartbeat.start();
  const reaper = new Reaper({ store, nodeId: config.NODE_ID, heartbeatMs: config.NODE_HEARTBEAT_MS, log, metrics, announce });
  reaper.start();
  const podWatcher = await startPodWatcher(config, log, (pod) => void reaper.evictNode(pod));

  const staticFiles = new StaticFiles([
    { prefix: '/client/', dir: fileURLToPath(new URL('../../client/dist/', import.meta.url)) },
    { prefix: '/', dir: fileURLToPath(new URL('../public/', import.meta.url)) },
  ]);
  server = new SignalingServer({
    uws,
    host: config.HOST,
    port: config.PORT,
    nodeId: config.NODE_ID,
    idleTimeoutMs: config.IDLE_TIMEOUT_MS,
    maxMessageBytes: config.MAX_MESSAGE_BYTES,
    sendBufferBytes: config.SEND_BUFFER_BYTES,
    rooms,
    metrics,
    log,
    staticFiles,
    verifier,
    allowedOrigins: config.ALLOWED_ORIGINS,
    maxConnectionsPerIp: config.MAX_CONNECTIONS_PER_IP,
    maxJsonDepth: config.MAX_JSON_DEPTH,
    rateLimit: {
      perSec: config.RATE_LIMIT_PER_SEC,
      burst: config.RATE_LIMIT_BURST,
      strikes: config.RATE_LIMIT_STRIKES,
      strikeWindowMs: config.RATE_LIMIT_STRIKE_WINDOW_MS,
    },
    isReady: async () => {
      if (isDraining || !bus.isUp()) return false;
      await store.ping();
      return true;
    },
  });
  const port = await server.listen();
  log.info({ host: config.HOST, port, native: isNative }, 'listening');

  let isStopping = false;
  const stop = async (signal: string) => {
    if (isStopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    isStopping = true;
    isDraining = true;
    log.info({ signal }, 'stopping');
    // DRAIN_TIMEOUT_MS bounds the whole shutdown, whatever Postgres and Redis do: past it the last
    // writes (grace periods, settlements) are abandoned and the process exits.
    setTimeout(() => {
      log.error({ timeoutMs: config.DRAIN_TIMEOUT_MS }, 'shutdown did not finish within DRAIN_TIMEOUT_MS: exiting anyway');
      process.exit(1);
    }, config.DRAIN_TIMEOUT_MS).unref();
    await drain({
      server: server!,
      rooms,
      heartbeat,
      metrics,
      log,
      // The rest of the budget is for the last writes and closing the connections.
      timeoutMs: config.DRAIN_TIMEOUT_MS - drainCloseReserveMs(config),
      spreadMs: config.DRAIN_SPREAD_MS,
      jitterMs: config.RECONNECT_JITTER_MS,
    });
    server!.stopListening();
    reaper.stop();
    heartbeat.stop();
    await podWatcher?.stop();
    await Promise.all([rooms.settled(), settler.settled()]);
    settler.stop();
    await bus.close();
    await database.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** Watches this Deployment's pods when running in Kubernetes, so a deleted pod's participants go at once. */
async function startPodWatcher(config: Config, log: Logger, onPodGone: (pod: string) => void): Promise<PodWatcher | null> {
  const isOn = config.K8S_POD_WATCH === 'on' || (config.K8S_POD_WATCH === 'auto' && isInCluster());
  if (!isOn) return null;
  if (!config.K8S_POD_SELECTOR || !config.POD_NAMESPACE) {
    log.warn('K8S_POD_WATCH is on but K8S_POD_SELECTOR or POD_NAMESPACE is unset: relying on heartbeats alone');
    return null;
  }
  // Loaded only here: the Kubernetes client is large and a node outside Kubernetes never needs it.
  const { PodWatcher } = await import('./cluster/pod-watcher.js');
  const watcher = new PodWatcher({ namespace: config.POD_NAMESPACE, labelSelector: config.K8S_POD_SELECTOR, onPodGone, log });
  watcher.start().catch((err) => log.warn({ err }, 'pod watcher failed to start; relying on heartbeats'));
  return watcher;
}

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(1);
}
const log = createLogger(config.LOG_LEVEL, config.NODE_ID);
start(config, log).catch((err) => {
  log.fatal({ err }, 'failed to start');
  process.exit(1);
});
