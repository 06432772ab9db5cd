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

export interface OpenDatabase {
  db: Kysely<Database>;
  isEmbedded: boolean;
  close(): Promise<void>;
}

/**
 * Connections per node unless told otherwise (DB_POOL_SIZE). Small on purpose: a join or leave holds
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
  /**
   * synchronous_commit for every session of the pool (Postgres only). `off` lets a commit return
   * before its WAL reaches the disk: a Postgres crash can then forget the last few hundred ms of
   * joins, leaves and state writes, but a commit no longer waits for an fsync with the room locked.
   */
  synchronousCommit?: 'on' | 'off' | 'local' | 'remote_write' | 'remote_apply';
}

export async function openDatabase(opts: DatabaseOptions): Promise<OpenDatabase> {
  if (opts.url) {
    const pool = new pg.Pool({
      connectionString: opts.url,
      // A join or leave holds its connection across the bus publish too: size for rate × duration.
      max: opts.poolSize ?? DEFAULT_POOL_SIZE,
      connectionTimeoutMillis: opts.timeoutMs,
      query_timeout: opts.timeoutMs,
      statement_timeout: opts.timeoutMs,
      idleTimeoutMillis: 30_000,
      application_name: 'signaling',
      // A startup parameter, so no statement is spent on it; unset keeps the server's setting.
      ...(opts.synchronousCommit ? { options: `-c synchronous_commit=${opts.synchronousCommit}` } : {}),
    });
    // An idle client that loses its server emits 'error' on the pool; without a listener that
    // would crash the process. The next query reconnects.
    pool.on('error', () => {});
    // A checked-out client whose server goes away emits 'error' too, and pg-pool listens only on
    // idle ones: without this the process would crash. The query in flight fails by itself.
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparing(pool) }) });
    return { db, isEmbedded: false, close: () => db.destroy() };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const dir = join(opts.dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  const pglite = await PGlite.create(dir);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return { db, isEmbedded: true, close: () => db.destroy() };
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
      // Typed loosely, as Kysely's own pg dialect does: pg's result and cursor types are wider than Kysely's.
      const query = ((textOrCursor: string | PostgresCursor<unknown>, parameters?: ReadonlyArray<unknown>) => {
        if (typeof textOrCursor !== 'string') return client.query(textOrCursor as unknown as pg.Submittable);
        const values = [...(parameters ?? [])];
        // pg parses a named statement on a connection the first time it runs there, then only binds it.
        const name = values.length > 0 ? nameOf(textOrCursor) : undefined;
        return name ? client.query({ name, text: textOrCursor, values }) : client.query(textOrCursor, values);
      }) as unknown as PostgresPoolClient['query'];
      return { query, release: (destroy?: boolean) => client.release(destroy) };
    },
    end: () => pool.end(),
  };
}
