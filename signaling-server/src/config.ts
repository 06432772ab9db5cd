// The node's configuration: read once from the environment and validated, so that a bad value
// stops the node at start with a message naming the variable instead of failing later.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { parseCidr } from './limits/client-address.js';
import { DEFAULT_POOL_SIZE } from './store/database.js';
import { parseWebhookSecret } from './webhooks/signature.js';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));
/** A switch: `on`/`off`, `true`/`false`, `yes`/`no` or `1`/`0`, in any case; empty is the default. */
const SWITCH_ON = ['on', 'true', 'yes', '1'];
const SWITCH_OFF = ['off', 'false', 'no', '0'];
const bool = (def: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const word = v?.trim().toLowerCase() ?? '';
      if (word === '') return def;
      if (SWITCH_ON.includes(word)) return true;
      if (SWITCH_OFF.includes(word)) return false;
      ctx.addIssue({
        code: 'custom',
        message: `not a switch: write on or off (or true/false, yes/no, 1/0), not ${v!.slice(0, 40)}`,
      });
      return z.NEVER;
    });

/** One RFC 7064/7065 URL: `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]`, and their `s` forms. */
const ICE_URL = /^(stuns?|turns?):(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(\?transport=(udp|tcp))?$/;
const iceUrls = optionalString.transform((v, ctx) => {
  const urls = (v ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  for (const url of urls) {
    if (!ICE_URL.test(url))
      ctx.addIssue({ code: 'custom', message: `not a stun:, stuns:, turn: or turns: URL: ${url.slice(0, 100)}` });
  }
  return urls;
});
const isTurnUrl = (url: string) => /^turns?:/.test(url);

/** `host:port` seeds of a Redis Cluster; an IPv6 address in brackets. */
const CLUSTER_NODE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const clusterNodes = optionalString.transform((v, ctx) => {
  if (v === undefined) return undefined;
  const nodes = v
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  for (const node of nodes) {
    if (!CLUSTER_NODE.test(node)) ctx.addIssue({ code: 'custom', message: `not a host:port: ${node.slice(0, 100)}` });
  }
  // ioredis takes an IPv6 seed without the brackets.
  return nodes.map((n) => n.replace(/^\[(.*)\](:\d+)$/, '$1$2'));
});

/**
 * Browser origins, each exactly as a browser sends it in `Origin` (`https://app.example.com`,
 * no path, no trailing slash): anything else would match no browser and refuse every one (403).
 */
const allowedOrigins = optionalString.transform((v, ctx) => {
  if (v === undefined) return undefined;
  const origins = v
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o.length > 0);
  for (const entry of origins) {
    const problem = originProblem(entry);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }
  return origins;
});

function originProblem(entry: string): string | undefined {
  const shown = entry.slice(0, 100);
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) return `${shown} has no scheme: write it as https://${shown}`;
  // Other schemes (an app's `capacitor://localhost`) are compared as written.
  if (!/^https?:/i.test(entry)) return undefined;
  let origin: string;
  try {
    origin = new URL(entry).origin;
  } catch {
    return `${shown} is not an origin: write it as scheme://host[:port], e.g. https://app.example.com`;
  }
  if (origin !== entry) return `${shown} is not an origin as browsers send it: write ${origin}`;
  return undefined;
}

/** RFC 7518 §3.2: an HS256 key has at least as many bits as the hash, 256. */
const MIN_HS256_SECRET_BYTES = 32;
const hs256Secret = optionalString.refine(
  (v) => v === undefined || Buffer.byteLength(v) >= MIN_HS256_SECRET_BYTES,
  `shorter than ${MIN_HS256_SECRET_BYTES} bytes, too short for HS256: make one with openssl rand -base64 32`,
);

/** Paths the node serves itself; a drop-in endpoint may not take them. */
const RESERVED_PATHS = ['/ws', '/healthz', '/readyz', '/metrics', '/v1', '/client'];

const ConfigSchema = z
  .object({
    PORT: int(8080, 0, 65535),
    HOST: z.string().min(1).default('0.0.0.0'),
    NODE_ID: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'letters, digits and _.:- only, at most 128')
      .optional(),
    DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
    REDIS_URL: optionalString.pipe(z.url({ protocol: /^rediss?$/ }).optional()),
    /** Seed nodes of a Redis Cluster (comma-separated host:port); instead of REDIS_URL. */
    REDIS_CLUSTER_NODES: clusterNodes,
    /** On a Redis Cluster: replicas that must hold each published batch before the publish counts (WAIT). */
    REDIS_CLUSTER_WAIT_REPLICAS: int(1, 0, 16),
    /** How long a publish waits for those replicas before it counts anyway (as unreplicated). */
    REDIS_CLUSTER_WAIT_TIMEOUT_MS: int(100, 1),
    REDIS_PREFIX: z.string().default('sig:'),
    /** A warning that repeats (a failed publish under a fault) is logged at most once per this interval, with the count left out. */
    LOG_REPEAT_INTERVAL_MS: int(10_000, 0),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    DATA_DIR: z.string().min(1).default('./data'),
    RESUME_GRACE_MS: int(10_000, 0),
    NODE_HEARTBEAT_MS: int(5_000, 100),
    IDLE_TIMEOUT_MS: int(30_000, 8_000, 960_000),
    DB_TIMEOUT_MS: int(5_000, 100),
    /** Postgres lock_timeout of every session; unset: half of DB_TIMEOUT_MS. */
    DB_LOCK_TIMEOUT_MS: z.coerce.number().int().min(1).optional(),
    /** Postgres idle_in_transaction_session_timeout of every session; unset: DB_TIMEOUT_MS + REDIS_TIMEOUT_MS. */
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: z.coerce.number().int().min(1).optional(),
    /** Postgres connections per node; every node of the cluster opens up to this many. */
    DB_POOL_SIZE: int(DEFAULT_POOL_SIZE, 1, 1000),
    /** Postgres's synchronous_commit for this node's sessions; unset keeps the server's setting. */
    DB_SYNCHRONOUS_COMMIT: optionalString.pipe(z.enum(['on', 'off', 'local', 'remote_write', 'remote_apply']).optional()),
    REDIS_TIMEOUT_MS: int(3_000, 100),
    /** How often every Redis connection is sent a PING; 0 turns the probe off. */
    REDIS_PROBE_INTERVAL_MS: int(1_000, 0),
    /** How long that PING may take before the connection counts as dead and is opened again. */
    REDIS_PROBE_TIMEOUT_MS: int(2_000, 50),
    /** TCP keepalive's idle time on every Redis connection; 0 leaves the system's (hours). */
    REDIS_KEEPALIVE_MS: int(1_000, 0),
    /** How long the bus may be unreachable before this node sends its clients to another; 0: never. */
    BUS_DOWN_RECONNECT_MS: int(5_000, 0),
    // At most 1 MiB: a node reads frames up to 16 times this before refusing them.
    MAX_MESSAGE_BYTES: int(64 * 1024, 1024, 1024 * 1024),
    MAX_ROOMS_PER_CONNECTION: int(16, 1),
    MAX_PARTICIPANTS_PER_ROOM: int(50, 1),
    SEND_BUFFER_BYTES: int(1024 * 1024, 16 * 1024),
    MAX_META_BYTES: int(4096, 2),
    MAX_JSON_DEPTH: int(32, 2, 1000),
    MAX_CONNECTIONS_PER_IP: int(100, 1),
    RATE_LIMIT_PER_SEC: int(100, 1),
    RATE_LIMIT_BURST: int(200, 1),
    /** Rate-limit violations within RATE_LIMIT_STRIKE_WINDOW_MS after which the connection is closed (1008). */
    RATE_LIMIT_STRIKES: int(50, 1),
    RATE_LIMIT_STRIKE_WINDOW_MS: int(10_000, 100),
    /** Proxies (CIDRs) whose PROXY protocol header or X-Forwarded-For/Forwarded name the client. */
    TRUSTED_PROXIES: z
      .string()
      .default('')
      .transform((v) =>
        v
          .split(',')
          .map((c) => c.trim())
          .filter((c) => c.length > 0),
      )
      .superRefine((cidrs, ctx) => {
        for (const c of cidrs) {
          try {
            parseCidr(c);
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
          }
        }
      }),
    /** The header TRUSTED_PROXIES write the client's address into (besides the PROXY protocol). */
    FORWARDED_HEADER: z.enum(['x-forwarded-for', 'forwarded', 'none']).default('x-forwarded-for'),
    IPV6_PREFIX_LENGTH: int(64, 1, 128),
    CONNECTION_BYTES_PER_SEC: int(256 * 1024, 1024),
    CONNECTION_BYTES_BURST: int(1024 * 1024, 1024),
    ADDRESS_BYTES_PER_SEC: int(1024 * 1024, 1024),
    ADDRESS_BYTES_BURST: int(4 * 1024 * 1024, 1024),
    /** Joins and state writes per client address: each is a database transaction under a room lock. */
    ADDRESS_WRITES_PER_SEC: int(50, 1),
    ADDRESS_WRITES_BURST: int(200, 1),
    /** Bytes of signal, broadcast and state frames per client address: what it may push into Redis. */
    ADDRESS_BUS_BYTES_PER_SEC: int(512 * 1024, 1024),
    ADDRESS_BUS_BYTES_BURST: int(2 * 1024 * 1024, 1024),
    MAX_QUEUED_REQUESTS: int(32, 1),
    MAX_GRACE_PER_ROOM: int(10, 0),
    MAX_GRACE_PER_IDENTITY: int(2, 0),
    RETENTION_INTERVAL_MS: int(60_000, 50),
    EVENT_RETENTION_MS: int(24 * 3600_000, 0),
    ROOM_RETENTION_MS: int(24 * 3600_000, 0),
    NODE_RETENTION_MS: int(24 * 3600_000, 0),
    RETENTION_BATCH_SIZE: int(500, 1, 100_000),
    DRAIN_TIMEOUT_MS: int(20_000, 0),
    DRAIN_SPREAD_MS: int(5_000, 0),
    RECONNECT_JITTER_MS: int(1_000, 0),
    HANDOVER_WAIT_MS: int(2_000, 0),
    /** How long each room's bus log keeps a message; 0 = RESUME_GRACE_MS + 60 s. */
    BUS_LOG_RETENTION_MS: int(0, 0),
    /** How often a node saves how far it delivered each room's signals, for resumes after it crashes. */
    CHECKPOINT_MS: int(250, 0),
    K8S_POD_WATCH: z.enum(['auto', 'on', 'off']).default('auto'),
    K8S_POD_SELECTOR: optionalString,
    POD_NAMESPACE: optionalString,
    AUTH_JWT_SECRET: hs256Secret,
    /** The previous HS256 secret, accepted too while a rotation is under way. */
    AUTH_JWT_SECRET_PREVIOUS: hs256Secret,
    AUTH_JWT_PUBLIC_KEY: optionalString,
    AUTH_JWKS_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
    ALLOWED_ORIGINS: allowedOrigins,
    ALLOW_UWS_FALLBACK: bool(false),
    /** Operator API keys: comma-separated `read:KEY` / `write:KEY` (api/admin-auth.ts). */
    ADMIN_API_KEYS: optionalString,
    /** Also accept JWTs with an `admin:read`/`admin:write` grant, signed with the join-token key. */
    ADMIN_API_JWT: bool(false),
    /** Comma-separated http(s) URLs that receive every webhook event. */
    WEBHOOK_URLS: optionalString.pipe(
      z
        .string()
        .transform((v) =>
          v
            .split(',')
            .map((u) => u.trim())
            .filter((u) => u !== ''),
        )
        .pipe(z.array(z.url({ protocol: /^https?$/ })))
        .optional(),
    ),
    /** Standard Webhooks secret, `whsec_<base64>`; required with WEBHOOK_URLS. */
    WEBHOOK_SECRET: optionalString,
    WEBHOOK_TIMEOUT_MS: int(5_000, 100),
    WEBHOOK_RETRY_MS: int(1_000, 10),
    WEBHOOK_MAX_AGE_MS: int(3_600_000, 1_000),
    /** Where y-webrtc's signaling endpoint is served (its clients' signaling URL); unset: off. */
    YWEBRTC_PATH: optionalString.pipe(
      z
        .string()
        .regex(/^(\/[A-Za-z0-9_.~-]+)+$/, 'a path such as /y-webrtc: /-separated segments of [A-Za-z0-9_.~-]')
        .refine((p) => !RESERVED_PATHS.some((r) => p === r || p.startsWith(`${r}/`)), {
          message: `must not be one of the node's own paths (${RESERVED_PATHS.join(', ')})`,
        })
        .optional(),
    ),
    /** Topics one y-webrtc connection may subscribe to at once; more are ignored (and counted). */
    YWEBRTC_MAX_TOPICS: int(64, 1, 10_000),
    /** The application's join hook: POSTed on every join (docs/security.md, "Join hook"); unset: off. */
    JOIN_HOOK_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
    /** Standard Webhooks secret the hook requests are signed with, `whsec_<base64>`; required with JOIN_HOOK_URL. */
    JOIN_HOOK_SECRET: optionalString,
    JOIN_HOOK_TIMEOUT_MS: int(2_000, 50, 60_000),
    /** Ask the hook again when a participant resumes (else it keeps the access it joined with). */
    JOIN_HOOK_ON_RESUME: bool(false),
    /** Admit joins the hook could not decide (timeout, error, breaker open) as the token alone says. */
    JOIN_HOOK_FAIL_OPEN: bool(false),
    /** Request headers (besides the cookies) passed to the hook; comma-separated names. */
    JOIN_HOOK_HEADERS: z
      .string()
      .default('')
      .transform((v) =>
        v
          .split(',')
          .map((h) => h.trim().toLowerCase())
          .filter((h) => h.length > 0),
      )
      .pipe(z.array(z.string().regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, 'not a header name'))),
    /** Hook requests one node has out at once; more wait (JOIN_HOOK_MAX_QUEUED of them, JOIN_HOOK_TIMEOUT_MS each at most). */
    JOIN_HOOK_MAX_CONCURRENCY: int(32, 1, 10_000),
    JOIN_HOOK_MAX_QUEUED: int(256, 0, 100_000),
    /** Failed hook requests in a row that open the circuit breaker. */
    JOIN_HOOK_BREAKER_FAILURES: int(5, 1),
    /** How long an open breaker refuses before one trial request goes out. */
    JOIN_HOOK_BREAKER_COOLDOWN_MS: int(5_000, 10),
    /** Comma-separated STUN/TURN URLs handed to clients in `joined`. */
    ICE_SERVERS: iceUrls,
    /** The TURN REST API shared secret the TURN server also has; credentials are HMACs under it. */
    TURN_SECRET: optionalString.pipe(z.string().min(16, 'at least 16 characters').optional()),
    /** Lifetime of the TURN credentials handed out, in seconds. */
    TURN_TTL: int(3600, 60, 7 * 86_400),
  })
  .superRefine((c, ctx) => {
    if (c.REDIS_URL && c.REDIS_CLUSTER_NODES) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_CLUSTER_NODES'],
        message: 'set either REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both',
      });
    }
    if (c.REDIS_CLUSTER_NODES?.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['REDIS_CLUSTER_NODES'], message: 'names no node' });
    }
    const hasTurnUrl = c.ICE_SERVERS.some(isTurnUrl);
    if (hasTurnUrl && !c.TURN_SECRET) {
      ctx.addIssue({ code: 'custom', path: ['TURN_SECRET'], message: 'required when ICE_SERVERS has a turn: or turns: URL' });
    }
    if (!hasTurnUrl && c.TURN_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['ICE_SERVERS'],
        message: 'TURN_SECRET is set but ICE_SERVERS has no turn: or turns: URL',
      });
    }
  });

export type Config = z.infer<typeof ConfigSchema> & {
  NODE_ID: string;
  DB_LOCK_TIMEOUT_MS: number;
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: number;
};

export class ConfigError extends Error {}

/** A Redis (one, or a cluster) is configured: the node can be one of many. */
export const hasRedis = (c: Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): boolean =>
  Boolean(c.REDIS_URL || c.REDIS_CLUSTER_NODES);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  if (parsed.data.WEBHOOK_URLS?.length && !parsed.data.WEBHOOK_SECRET) {
    throw new ConfigError('invalid configuration: WEBHOOK_SECRET: required when WEBHOOK_URLS is set');
  }
  if (parsed.data.JOIN_HOOK_URL) {
    if (!parsed.data.JOIN_HOOK_SECRET) {
      throw new ConfigError('invalid configuration: JOIN_HOOK_SECRET: required when JOIN_HOOK_URL is set');
    }
    try {
      parseWebhookSecret(parsed.data.JOIN_HOOK_SECRET, 'JOIN_HOOK_SECRET');
    } catch (err) {
      throw new ConfigError(`invalid configuration: ${(err as Error).message}`);
    }
  }
  const data = parsed.data;
  const config: Config = {
    ...data,
    NODE_ID: data.NODE_ID ?? `${hostname()}-${randomBytes(3).toString('hex')}`,
    // 0 means: the grace and a minute more.
    BUS_LOG_RETENTION_MS: data.BUS_LOG_RETENTION_MS || data.RESUME_GRACE_MS + 60_000,
    DB_LOCK_TIMEOUT_MS: data.DB_LOCK_TIMEOUT_MS ?? Math.max(1, Math.floor(data.DB_TIMEOUT_MS / 2)),
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: data.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS ?? data.DB_TIMEOUT_MS + data.REDIS_TIMEOUT_MS,
  };
  const problems = timerConflicts(config);
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  return config;
}

/**
 * Timer combinations that cannot work: the node refuses to start with them. (Each value alone
 * passed the schema; together they would break a promise of the protocol every time.)
 */
function timerConflicts(c: Config): string[] {
  const problems: string[] = [];
  // A resume at the very end of its grace reads its gap back from the log: the log must still hold it.
  if (c.BUS_LOG_RETENTION_MS < c.RESUME_GRACE_MS + c.HANDOVER_WAIT_MS) {
    problems.push(
      `BUS_LOG_RETENTION_MS (${c.BUS_LOG_RETENTION_MS}) must be at least RESUME_GRACE_MS + HANDOVER_WAIT_MS (${c.RESUME_GRACE_MS + c.HANDOVER_WAIT_MS}): a resume late in its grace reads its gap back from the room's log`,
    );
  }
  if (c.REDIS_CLUSTER_WAIT_TIMEOUT_MS >= c.REDIS_TIMEOUT_MS) {
    problems.push(
      `REDIS_CLUSTER_WAIT_TIMEOUT_MS (${c.REDIS_CLUSTER_WAIT_TIMEOUT_MS}) must be less than REDIS_TIMEOUT_MS (${c.REDIS_TIMEOUT_MS}): a publish waiting for replicas would time out instead of counting as unreplicated`,
    );
  }
  if (c.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS <= c.REDIS_TIMEOUT_MS) {
    problems.push(
      `DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: must exceed REDIS_TIMEOUT_MS (${c.REDIS_TIMEOUT_MS}): a join keeps its transaction open across a bus publish, and Postgres would end the session of any join whose publish is merely slow`,
    );
  }
  if (c.RESUME_GRACE_MS > 0 && c.RESUME_GRACE_MS <= c.RECONNECT_JITTER_MS) {
    problems.push(
      `RESUME_GRACE_MS: must exceed RECONNECT_JITTER_MS (${c.RECONNECT_JITTER_MS}): a draining node tells clients to wait up to that long before resuming, so their grace would end first and everyone would see them leave`,
    );
  }
  return problems;
}

/** How much of DRAIN_TIMEOUT_MS is kept for the last writes and closing the connections, after the clients. */
export function drainCloseReserveMs(c: Pick<Config, 'DRAIN_TIMEOUT_MS' | 'DB_TIMEOUT_MS'>): number {
  return Math.min(c.DB_TIMEOUT_MS, Math.floor(c.DRAIN_TIMEOUT_MS / 4));
}

/** Timer combinations that work but lose something; the node logs each at start. */
export function timerWarnings(c: Config): string[] {
  const warnings: string[] = [];
  const clientBudget = c.DRAIN_TIMEOUT_MS - drainCloseReserveMs(c);
  const lastReconnect = Math.min(c.DRAIN_SPREAD_MS, clientBudget / 2) + 500 + c.RECONNECT_JITTER_MS;
  if (clientBudget < lastReconnect) {
    warnings.push(
      `DRAIN_TIMEOUT_MS (${c.DRAIN_TIMEOUT_MS}) leaves ${clientBudget} ms for clients, less than the ${lastReconnect} ms the last of them may take to come back (DRAIN_SPREAD_MS, the 500 ms close delay, RECONNECT_JITTER_MS): a draining node may exit before they resume`,
    );
  }
  if (c.DB_TIMEOUT_MS >= 2 * c.NODE_HEARTBEAT_MS) {
    warnings.push(
      `DB_TIMEOUT_MS (${c.DB_TIMEOUT_MS}) is at least two NODE_HEARTBEAT_MS periods (${c.NODE_HEARTBEAT_MS}): one slow heartbeat can get a live node judged dead`,
    );
  }
  return warnings;
}
