// Starts one signaling node: configuration, database and migrations, bus, domain, HTTP/WebSocket
// server, heartbeats and the reaper, wired by constructor injection, and stops it on a signal.
import { fileURLToPath } from 'node:url';
import { AdminAuth, parseApiKeys } from './api/admin-auth.js';
import { buildOpenApi } from './api/openapi.js';
import { operatorRoutes } from './api/operator-routes.js';
import { ApiRouter, type Route } from './api/router.js';
import { createPayloadVerifier, createTokenVerifier } from './auth/token-verifier.js';
import { NodeCommands } from './cluster/node-commands.js';
import { NodeLoadReporter } from './cluster/node-load.js';
import { JoinHook } from './hook/join-hook.js';
import { AccessRechecks } from './rooms/access-rechecks.js';
import { RoomAdmin } from './rooms/room-admin.js';
import { ClusterReader } from './store/cluster-reader.js';
import { parseWebhookSecret } from './webhooks/signature.js';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
import { WebhookOutbox } from './webhooks/webhook-outbox.js';
import { RedisBus } from './bus/redis-bus.js';
import { TopicRelay } from './rooms/topic-relay.js';
import type { LocalFanout } from './rooms/session.js';
import { MemoryHub } from './bus/memory-bus.js';
import { MemoryGapRecords, RedisGapRecords, type GapRecords } from './bus/gap-records.js';
import { RedisNodeBeats, type NodeBeats } from './bus/node-beats.js';
import type { RoomBus } from './bus/bus.js';
import { drain } from './cluster/drain.js';
import { BusOutage } from './cluster/bus-outage.js';
import { Heartbeat } from './cluster/heartbeat.js';
import { IceServerIssuer } from './ice/ice-servers.js';
import { isInCluster } from './cluster/in-cluster.js';
import type { PodWatcher } from './cluster/pod-watcher.js';
import { Reaper } from './cluster/reaper.js';
import { Retention } from './cluster/retention.js';
import { Settler } from './cluster/settler.js';
import { ClientAddressResolver } from './limits/client-address.js';
import { ConfigError, drainCloseReserveMs, hasRedis, loadConfig, timerWarnings, type Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { RepeatedWarnings } from './log-repeats.js';
import { createMetrics } from './metrics.js';
import { RoomService } from './rooms/room-service.js';
import { DatabaseCheck } from './store/database-check.js';
import { openDatabase } from './store/database.js';
import { migrateToLatest } from './store/migrations.js';
import { PostgresStore } from './store/postgres-store.js';
import { PostgresPruneStore } from './store/retention-store.js';
import { SignalingServer } from './transport/server.js';
import { StaticFiles } from './transport/static-files.js';
import { checkPortFree } from './transport/port-check.js';
import { StartupError, addressOf, reasonOf, startupStep } from './startup-error.js';
import { loadUws } from './transport/uws.js';

async function start(config: Config, log: Logger) {
  const { uws, isNative } = await loadUws(config.ALLOW_UWS_FALLBACK);
  if (!isNative) log.warn('running on the uWebSockets.js JavaScript fallback (ALLOW_UWS_FALLBACK): expect far lower throughput');
  const metrics = createMetrics();
  const warnings = new RepeatedWarnings(log, config.LOG_REPEAT_INTERVAL_MS);
  for (const warning of timerWarnings(config)) log.warn(warning);
  // Before the database: a second run of the same command must not evict the first one's participants.
  await startupStep('PORT', `cannot listen on ${config.HOST}:${config.PORT}`, () => checkPortFree(config.HOST, config.PORT));

  const database = await startupStep(
    config.DATABASE_URL ? 'DATABASE_URL' : 'DATA_DIR',
    config.DATABASE_URL ? `cannot use the database at ${addressOf(config.DATABASE_URL)}` : 'cannot open the embedded database',
    () => openAndMigrate(config, log, metrics),
  );
  // With webhooks on, each membership and state change also writes its events to the outbox.
  const webhookUrls = config.WEBHOOK_URLS ?? [];
  const webhookKey = webhookUrls.length > 0 ? parseWebhookSecret(config.WEBHOOK_SECRET!) : null;
  const outbox = webhookKey ? new WebhookOutbox(webhookUrls) : null;
  let settler: Settler | null = null;
  const store = new PostgresStore(database.db, (op, seconds) => metrics.dbQuerySeconds.labels(op).observe(seconds), {
    livenessDb: database.livenessDb,
    onCommitUnknown: (change) => settler?.settle(change),
    recordChange: outbox?.record,
  });

  let bus: RoomBus;
  let gapRecords: GapRecords;
  let beats: NodeBeats | undefined;
  if (hasRedis(config)) {
    const redisVariable = config.REDIS_URL ? 'REDIS_URL' : 'REDIS_CLUSTER_NODES';
    const redisAddress = config.REDIS_URL ? addressOf(config.REDIS_URL) : config.REDIS_CLUSTER_NODES!.join(',');
    const redisBus = await startupStep(redisVariable, `cannot connect to Redis at ${redisAddress}`, () =>
      RedisBus.connect({
        url: config.REDIS_URL,
        nodeId: config.NODE_ID,
        clusterNodes: config.REDIS_CLUSTER_NODES,
        waitReplicas: config.REDIS_CLUSTER_WAIT_REPLICAS,
        waitTimeoutMs: config.REDIS_CLUSTER_WAIT_TIMEOUT_MS,
        prefix: config.REDIS_PREFIX,
        timeoutMs: config.REDIS_TIMEOUT_MS,
        retentionMs: config.BUS_LOG_RETENTION_MS,
        probeIntervalMs: config.REDIS_PROBE_INTERVAL_MS,
        probeTimeoutMs: config.REDIS_PROBE_TIMEOUT_MS,
        keepAliveMs: config.REDIS_KEEPALIVE_MS,
        log,
        warnings,
        onSilent: (connection) => metrics.busSilentConnections.labels(connection).inc(),
        onStatus: (isUp) => metrics.busUp.set(isUp ? 1 : 0),
        onRecovered: (_room, count) => metrics.busRecovered.inc(count),
        onUnreplicated: (count) => metrics.busUnreplicated.inc(count),
      }),
    );
    bus = redisBus;
    gapRecords = new RedisGapRecords(redisBus.client, config.REDIS_PREFIX);
    beats = new RedisNodeBeats(redisBus.client, config.REDIS_PREFIX);
  } else {
    bus = new MemoryHub(config.BUS_LOG_RETENTION_MS).createBus(config.NODE_ID);
    gapRecords = new MemoryGapRecords();
  }
  metrics.busUp.set(bus.isUp() ? 1 : 0);
  if (database.isEmbedded || !hasRedis(config)) {
    log.warn(
      { embeddedDatabase: database.isEmbedded, inProcessBus: !hasRedis(config), dataDir: config.DATA_DIR },
      'running embedded: this node cannot be scaled out; set DATABASE_URL and REDIS_URL (or REDIS_CLUSTER_NODES) to run a cluster',
    );
  }
  const verifier = createTokenVerifier({
    secret: config.AUTH_JWT_SECRET,
    previousSecret: config.AUTH_JWT_SECRET_PREVIOUS,
    publicKeyPem: config.AUTH_JWT_PUBLIC_KEY,
    jwksUrl: config.AUTH_JWKS_URL,
    jwksTimeoutMs: config.DB_TIMEOUT_MS,
  });
  if (!verifier) log.warn('no token secret or key configured: anonymous joins are allowed');

  const iceServers =
    config.ICE_SERVERS.length > 0
      ? new IceServerIssuer({ urls: config.ICE_SERVERS, turnSecret: config.TURN_SECRET, ttlSeconds: config.TURN_TTL })
      : undefined;
  // The URLs only: the secret and the credentials made from it are never logged.
  if (iceServers) log.info({ iceUrls: config.ICE_SERVERS, turnTtlSeconds: config.TURN_TTL }, 'handing out ICE servers');

  // The operator's removals and the join hook's re-checks take the same path: RoomAdmin's.
  const admin = new RoomAdmin({ nodeId: config.NODE_ID, store, bus, metrics, log });
  const joinHook = config.JOIN_HOOK_URL
    ? new JoinHook({
        url: config.JOIN_HOOK_URL,
        key: parseWebhookSecret(config.JOIN_HOOK_SECRET!, 'JOIN_HOOK_SECRET'),
        timeoutMs: config.JOIN_HOOK_TIMEOUT_MS,
        maxInFlight: config.JOIN_HOOK_MAX_CONCURRENCY,
        maxWaiting: config.JOIN_HOOK_MAX_QUEUED,
        breakerFailures: config.JOIN_HOOK_BREAKER_FAILURES,
        breakerCoolDownMs: config.JOIN_HOOK_BREAKER_COOLDOWN_MS,
        maxMetaBytes: config.MAX_META_BYTES,
        metrics,
        log,
      })
    : null;
  if (joinHook) {
    // The URL's origin only: a path or query may hold a credential.
    const hookOrigin = new URL(config.JOIN_HOOK_URL!).origin;
    log.info({ hookOrigin, onResume: config.JOIN_HOOK_ON_RESUME, failOpen: config.JOIN_HOOK_FAIL_OPEN }, 'join hook on');
  }

  let isDraining = false;
  let server: SignalingServer | null = null;
  // The server is made last (it needs the rooms); until then there is nobody to fan out to.
  const fanout: LocalFanout = {
    publish: (topic, frame) => server?.publish(topic, frame),
    subscriberCount: (topic) => server?.subscriberCount(topic) ?? 0,
  };
  const databaseCheck = new DatabaseCheck(store, DATABASE_CHECK_MS);
  const rooms = new RoomService({
    nodeId: config.NODE_ID,
    store,
    bus,
    fanout,
    metrics,
    log,
    warnings,
    resumeGraceMs: config.RESUME_GRACE_MS,
    maxRoomsPerConnection: config.MAX_ROOMS_PER_CONNECTION,
    maxParticipantsPerRoom: config.MAX_PARTICIPANTS_PER_ROOM,
    graceSeats: { maxGracePerRoom: config.MAX_GRACE_PER_ROOM, maxGracePerIdentity: config.MAX_GRACE_PER_IDENTITY },
    maxQueuedRequests: config.MAX_QUEUED_REQUESTS,
    maxMetaBytes: config.MAX_META_BYTES,
    verifier,
    ...(joinHook
      ? {
          joinHook: { hook: joinHook, isAskedOnResume: config.JOIN_HOOK_ON_RESUME, isFailOpen: config.JOIN_HOOK_FAIL_OPEN },
          rechecks: new AccessRechecks({ hook: joinHook, remover: admin, metrics, log }),
        }
      : {}),
    gapRecords,
    handoverWaitMs: config.HANDOVER_WAIT_MS,
    checkpointMs: config.CHECKPOINT_MS,
    iceServers,
    // Asked before every join and leave (store/database-check.ts), so none waits DB_TIMEOUT_MS on a
    // database that stopped answering, however recently, nor is refused once it answers again.
    isDatabaseUp: () => databaseCheck.isUp(),
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
    isBusUp: () => bus.isUp(),
    beats,
    // 1012 as in a drain: the clients reconnect and re-join (resuming what the cluster still holds).
    onJudgedDead: () => server?.closeAll(1012, 'node restarting'),
  });
  await heartbeat.register();
  heartbeat.start();
  const reaper = new Reaper({
    store,
    nodeId: config.NODE_ID,
    heartbeatMs: config.NODE_HEARTBEAT_MS,
    log,
    metrics,
    announce,
    beats,
  });
  reaper.start();
  // Nodes with webhooks on take turns at the outbox's lease; the holder delivers every row.
  const webhooks = webhookKey
    ? new WebhookDispatcher({
        db: database.db,
        store,
        nodeId: config.NODE_ID,
        key: webhookKey,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        maxAgeMs: config.WEBHOOK_MAX_AGE_MS,
        retryMs: config.WEBHOOK_RETRY_MS,
        intervalMs: Math.max(50, Math.min(1000, Math.round(config.NODE_HEARTBEAT_MS / 4))),
        metrics,
        log,
      })
    : null;
  webhooks?.start();
  const retention = new Retention({
    store,
    pruner: new PostgresPruneStore(database.db),
    nodeId: config.NODE_ID,
    intervalMs: config.RETENTION_INTERVAL_MS,
    eventRetentionMs: config.EVENT_RETENTION_MS,
    roomRetentionMs: config.ROOM_RETENTION_MS,
    nodeRetentionMs: config.NODE_RETENTION_MS,
    batchSize: config.RETENTION_BATCH_SIZE,
    log,
    metrics,
  });
  retention.start();
  const podWatcher = await startPodWatcher(config, log, (pod) => void reaper.evictNode(pod));

  // The operator API: the same on every node; a drain it asks for runs stop() below.
  let requestStop: (reason: string) => void = () => {};
  const reader = new ClusterReader(database.db);
  const commands = new NodeCommands({ nodeId: config.NODE_ID, bus, log, onCommand: () => requestStop('api-drain') });
  await commands.start();
  const tokenKeys = {
    secret: config.AUTH_JWT_SECRET,
    previousSecret: config.AUTH_JWT_SECRET_PREVIOUS,
    publicKeyPem: config.AUTH_JWT_PUBLIC_KEY,
    jwksUrl: config.AUTH_JWKS_URL,
  };
  const adminAuth = new AdminAuth(
    parseApiKeys(config.ADMIN_API_KEYS),
    config.ADMIN_API_JWT ? createPayloadVerifier(tokenKeys) : null,
  );
  if (!adminAuth.isEnabled) log.info('operator API off: set ADMIN_API_KEYS (or ADMIN_API_JWT=on) to turn it on');
  let openApi: unknown;
  const routes: Route[] = operatorRoutes({
    nodeId: config.NODE_ID,
    reader,
    admin,
    commands,
    drainSelf: () => requestStop('api-drain'),
    log,
    openApi: () => (openApi ??= buildOpenApi(routes, API_VERSION)),
  });
  const api = new ApiRouter(routes, adminAuth, log);

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
    api,
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
    connectionBytes: { perSec: config.CONNECTION_BYTES_PER_SEC, burst: config.CONNECTION_BYTES_BURST },
    addressRates: {
      bytes: { perSec: config.ADDRESS_BYTES_PER_SEC, burst: config.ADDRESS_BYTES_BURST },
      writes: { perSec: config.ADDRESS_WRITES_PER_SEC, burst: config.ADDRESS_WRITES_BURST },
      busBytes: { perSec: config.ADDRESS_BUS_BYTES_PER_SEC, burst: config.ADDRESS_BUS_BYTES_BURST },
    },
    clientAddress: new ClientAddressResolver({
      trustedProxies: config.TRUSTED_PROXIES,
      forwardedHeader: config.FORWARDED_HEADER,
      ipv6PrefixLength: config.IPV6_PREFIX_LENGTH,
    }),
    joinHookHeaders: joinHook ? config.JOIN_HOOK_HEADERS : null,
    ...(config.YWEBRTC_PATH
      ? {
          ywebrtc: {
            path: config.YWEBRTC_PATH,
            maxTopics: config.YWEBRTC_MAX_TOPICS,
            relay: new TopicRelay({
              nodeId: config.NODE_ID,
              bus,
              fanout,
              metrics,
              log,
            }),
          },
        }
      : {}),
    isReady: async () => {
      if (isDraining || !bus.isUp()) return false;
      await store.ping();
      return true;
    },
  });
  const port = await startupStep('PORT', `cannot listen on ${config.HOST}:${config.PORT}`, () => server!.listen());
  log.info({ host: config.HOST, port, native: isNative }, 'listening');
  process.stderr.write(`${startupLine(config, port, adminAuth.isEnabled, database.isEmbedded)}\n`);
  if (config.YWEBRTC_PATH) log.info({ protocol: 'y-webrtc', path: config.YWEBRTC_PATH }, 'serving y-webrtc signaling');
  // A node cut off from Redis alone sends its clients where their sends work; see bus-outage.ts.
  const busOutage =
    hasRedis(config) && config.BUS_DOWN_RECONNECT_MS > 0
      ? new BusOutage({
          nodeId: config.NODE_ID,
          store,
          isBusUp: () => bus.isUp(),
          thresholdMs: config.BUS_DOWN_RECONNECT_MS,
          checkMs: 250,
          peerNoticeMs: config.REDIS_PROBE_INTERVAL_MS + config.REDIS_PROBE_TIMEOUT_MS,
          log,
          onMove: () => {
            metrics.busAwayMoves.inc();
            server!.isBusAway = true;
            server!.sendAllAway(config.RECONNECT_JITTER_MS);
          },
          onBack: () => (server!.isBusAway = false),
        })
      : null;
  busOutage?.start();
  const load = new NodeLoadReporter({
    reader,
    nodeId: config.NODE_ID,
    intervalMs: config.NODE_HEARTBEAT_MS,
    connections: () => server?.connectionCount ?? 0,
    log,
  });
  load.start();

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
    load.stop();
    reaper.stop();
    busOutage?.stop();
    webhooks?.stop();
    retention.stop();
    heartbeat.stop();
    await podWatcher?.stop();
    await Promise.all([rooms.settled(), settler.settled()]);
    settler.stop();
    rooms.close();
    await bus.close();
    await database.close();
    log.info('stopped');
    process.exit(0);
  };
  // A repeated drain request is not a second signal: it must not cut the drain short.
  requestStop = (reason) => void (isStopping || stop(reason));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/**
 * The one line a person starting the node reads (on stderr: stdout is the JSON log): where the
 * demo is and what to set next.
 */
function startupLine(config: Config, port: number, isApiOn: boolean, isEmbedded: boolean): string {
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const api = isApiOn
    ? `operator API at ${base}/v1 (signalctl: SIGNALCTL_URL=${base} SIGNALCTL_KEY=<a key of ADMIN_API_KEYS>)`
    : 'operator API off: set ADMIN_API_KEYS to write:<a key of 16+ characters> to turn it on';
  const mode = isEmbedded || !hasRedis(config) ? '; embedded, one node only (DATABASE_URL and REDIS_URL make a cluster)' : '';
  return `signaling node ${config.NODE_ID}: demo at ${base}/ — ${api}${mode}; logs are JSON on stdout`;
}

/** The database, migrated: its first query is the migration, so an unreachable database fails here. */
async function openAndMigrate(config: Config, log: Logger, metrics: ReturnType<typeof createMetrics>) {
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
  try {
    const applied = await migrateToLatest(database.db);
    if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  } catch (err) {
    await database.close().catch(() => {});
    throw err;
  }
  return database;
}

/** How long a join or leave waits for Postgres to answer a ping before it is refused `unavailable`. */
const DATABASE_CHECK_MS = 250;

/** The operator API's version in its OpenAPI document. */
const API_VERSION = '1.0.0';

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
  // One line a person reads on stderr; the log keeps the stack for whoever digs.
  const line = `cannot start: ${err instanceof StartupError ? err.message : reasonOf(err)}`;
  log.fatal({ err, variable: err instanceof StartupError ? err.variable : undefined }, line);
  process.stderr.write(`${line}\n`);
  process.exit(1);
});
