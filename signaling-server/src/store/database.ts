// Opens the database: Postgres through pg when DATABASE_URL is set, else an embedded PGlite under
// DATA_DIR (one node only). Every pg query carries a timeout so a dead database fails fast, and
// each parameterised query is a named prepared statement, so Postgres parses and plans it once per
// connection rather than on every call.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PostgresDialect, type PostgresCursor, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { PGliteDialect } from './pglite-dialect.js';
import { lockDataDir } from './data-dir-lock.js';

export interface OpenDatabase {
  db: Kysely<Database>;
  /** Heartbeats and the reaper lease: one connection of their own (the same database when embedded). */
  livenessDb: Kysely<Database>;
  isEmbedded: boolean;
  close(): Promise<void>;
}

/**
 * Connections per node unless told otherwise (DB_POOL_SIZE), one of them for heartbeats and the lease. Small on purpose: a join or leave holds
 * its connection for about three round trips, so a few serve hundreds per second, and every node
 * of the autoscaled cluster opens its own. On a 2-core Postgres, 5 per node did more joins per
 * second than 20 with less database CPU (docs/benchmarks.md).
 */
export const DEFAULT_POOL_SIZE = 5;

export interface DatabaseOptions {
  url?: string;
  dataDir: string;
  timeoutMs: number;
  poolSize?: number;
  /** Shown in pg_stat_activity as `signaling <nodeId>` (and `signaling-liveness <nodeId>`). */
  nodeId?: string;
  /**
   * lock_timeout of every session: a room whose row lock is held by a frozen session answers
   * `unavailable` after this instead of queueing every join behind it. Defaults to timeoutMs / 2.
   */
  lockTimeoutMs?: number;
  /**
   * idle_in_transaction_session_timeout of every session: Postgres ends the session of a node that
   * froze inside a transaction (a paused VM, a partition), releasing its room locks. It must exceed
   * the longest wait inside a transaction, the bus publish. Defaults to twice timeoutMs.
   */
  idleInTransactionTimeoutMs?: number;
  /** Told of every connection that fails outside a query (its server went away, say). */
  onConnectionError?: (err: Error) => void;
  /**
   * synchronous_commit for every session of the pool (Postgres only). `off` lets a commit return
   * before its WAL reaches the disk: a Postgres crash can then forget the last few hundred ms of
   * joins, leaves and state writes, but a commit no longer waits for an fsync with the room locked.
   */
  synchronousCommit?: 'on' | 'off' | 'local' | 'remote_write' | 'remote_apply';
}

export async function openDatabase(opts: DatabaseOptions): Promise<OpenDatabase> {
  if (opts.url) {
    // One of the node's connections is kept for liveness (a heartbeat and a lease renewal per
    // period, never held across I/O), so the node's total stays poolSize (at least 2).
    const main = openPool(opts, Math.max(1, (opts.poolSize ?? DEFAULT_POOL_SIZE) - 1), 'signaling');
    const liveness = openPool(opts, 1, 'signaling-liveness');
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparing(main) }) });
    const livenessDb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparing(liveness) }) });
    return {
      db,
      livenessDb,
      isEmbedded: false,
      close: async () => void (await Promise.all([db.destroy(), livenessDb.destroy()])),
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const dir = join(opts.dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  const lock = lockDataDir(opts.dataDir);
  let pglite;
  try {
    pglite = await PGlite.create(dir);
  } catch (err) {
    lock.release();
    throw err;
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    livenessDb: db,
    isEmbedded: true,
    close: async () => {
      await db.destroy();
      lock.release();
    },
  };
}

function openPool(opts: DatabaseOptions, max: number, name: string): pg.Pool {
  const lockTimeoutMs = opts.lockTimeoutMs ?? Math.floor(opts.timeoutMs / 2);
  const idleInTransactionTimeoutMs = opts.idleInTransactionTimeoutMs ?? 2 * opts.timeoutMs;
  const pool = new pg.Pool({
    connectionString: opts.url,
    // A join or leave holds its connection across the bus publish too: size for rate × duration.
    max,
    connectionTimeoutMillis: opts.timeoutMs,
    // The client-side bound on every query, COMMIT included, for when the server cannot answer at all.
    query_timeout: opts.timeoutMs,
    // Server-side bounds, so that a session waiting on a lock or a frozen client does not outlive
    // its caller's patience and hold locks others need. Startup parameters: no statement is spent.
    statement_timeout: opts.timeoutMs,
    lock_timeout: lockTimeoutMs,
    idle_in_transaction_session_timeout: idleInTransactionTimeoutMs,
    idleTimeoutMillis: 30_000,
    // application_name is at most 63 bytes; Postgres cuts longer ones.
    application_name: opts.nodeId ? `${name} ${opts.nodeId}` : name,
    // Unset keeps the server's setting.
    ...(opts.synchronousCommit ? { options: `-c synchronous_commit=${opts.synchronousCommit}` } : {}),
  });
  const onError = (err: Error) => opts.onConnectionError?.(err);
  // An idle client that loses its server emits 'error' on the pool; without a listener that
  // would crash the process. The next query reconnects.
  pool.on('error', onError);
  // A checked-out client whose server goes away emits 'error' too, and pg-pool listens only on
  // idle ones: without this the process would crash. The query in flight fails by itself.
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}

/**
 * At most this many distinct query texts get a prepared statement; the rest (texts that vary with
 * the length of an IN list, say) run unnamed, as pg does by default.
 */
const MAX_PREPARED = 200;

/** The pool as Kysely sees it, with each query text of parameterised queries prepared by name. */
function preparing(pool: pg.Pool): PostgresPool {
  const names = new Map<string, string>();
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (name === undefined && names.size < MAX_PREPARED) names.set(text, (name = `signaling_${names.size}`));
    return name;
  };
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      // A query that failed without an answer from Postgres (a client-side timeout, a dead socket)
      // leaves the connection in an unknown state: a late reply would answer the next user's query.
      // Such a connection is destroyed on release instead of going back to the pool.
      let isBroken = false;
      const noteFailure = (err: unknown) => {
        if (!(err instanceof Error && 'code' in err && typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)))
          isBroken = true;
        throw err;
      };
      // Typed loosely, as Kysely's own pg dialect does: pg's result and cursor types are wider than Kysely's.
      const query = ((textOrCursor: string | PostgresCursor<unknown>, parameters?: ReadonlyArray<unknown>) => {
        if (typeof textOrCursor !== 'string') return client.query(textOrCursor as unknown as pg.Submittable);
        const values = [...(parameters ?? [])];
        // pg parses a named statement on a connection the first time it runs there, then only binds it.
        const name = values.length > 0 ? nameOf(textOrCursor) : undefined;
        return (name ? client.query({ name, text: textOrCursor, values }) : client.query(textOrCursor, values)).catch(
          noteFailure,
        );
      }) as unknown as PostgresPoolClient['query'];
      return { query, release: (destroy?: boolean) => client.release(destroy || isBroken) };
    },
    end: () => pool.end(),
  };
}
