// Opens the database: Postgres through pg when DATABASE_URL is set, else an embedded PGlite under
// DATA_DIR (one node only). Every pg query carries a timeout so a dead database fails fast.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { PGliteDialect } from './pglite-dialect.js';

export interface OpenDatabase {
  db: Kysely<Database>;
  isEmbedded: boolean;
  close(): Promise<void>;
}

export async function openDatabase(opts: { url?: string; dataDir: string; timeoutMs: number }): Promise<OpenDatabase> {
  if (opts.url) {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: 10,
      connectionTimeoutMillis: opts.timeoutMs,
      query_timeout: opts.timeoutMs,
      statement_timeout: opts.timeoutMs,
      idleTimeoutMillis: 30_000,
      application_name: 'signaling',
    });
    // An idle client that loses its server emits 'error' on the pool; without a listener that
    // would crash the process. The next query reconnects.
    pool.on('error', () => {});
    // A checked-out client whose server goes away emits 'error' too, and pg-pool listens only on
    // idle ones: without this the process would crash. The query in flight fails by itself.
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { db, isEmbedded: false, close: () => db.destroy() };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const dir = join(opts.dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  const pglite = await PGlite.create(dir);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return { db, isEmbedded: true, close: () => db.destroy() };
}
