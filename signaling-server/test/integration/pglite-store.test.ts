// PostgresStore on the embedded PGlite that `npm start` uses by default: the same RoomStore
// contract, so the migrations' functions work there as they do on Postgres.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openDatabase, type OpenDatabase } from '../../src/store/database.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { describeRoomStore } from '../support/store-contract.js';

const dataDir = mkdtempSync(join(tmpdir(), 'signaling-pglite-'));
let opened: Promise<{ database: OpenDatabase; store: PostgresStore }> | null = null;

afterAll(async () => {
  if (opened) await (await opened).database.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describeRoomStore('PostgresStore on PGlite', async () => {
  opened ??= (async () => {
    const database = await openDatabase({ dataDir, timeoutMs: 5000 });
    await migrateToLatest(database.db);
    return { database, store: new PostgresStore(database.db) };
  })();
  return (await opened).store;
});
