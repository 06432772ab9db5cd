// `npm run migrate`: applies the SQL migrations in db/ to DATABASE_URL (or the embedded database).
import { loadConfig } from '../config.js';
import { openDatabase } from '../store/database.js';
import { migrateToLatest } from '../store/migrations.js';

const config = loadConfig();
const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, timeoutMs: 30_000 });
try {
  const applied = await migrateToLatest(database.db);
  process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
} finally {
  await database.close();
}
