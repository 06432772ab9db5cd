// PostgresStore against a real Postgres: the RoomStore contract, and migrations that several nodes
// may run at once.
import { sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { openDatabase, type OpenDatabase } from '../../src/store/database.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { createTestDatabase } from '../support/cluster.js';
import { describeRoomStore } from '../support/store-contract.js';

const opened: OpenDatabase[] = [];
let shared: Promise<PostgresStore> | null = null;

async function open(url: string) {
  const database = await openDatabase({ url, dataDir: '', timeoutMs: 5000 });
  opened.push(database);
  return database;
}

afterAll(async () => {
  await Promise.all(opened.map((d) => d.close()));
});

describeRoomStore('PostgresStore', () => {
  shared ??= (async () => {
    const database = await open(await createTestDatabase());
    await migrateToLatest(database.db);
    return new PostgresStore(database.db);
  })();
  return shared;
});

it('applies the migrations once when several nodes start at the same moment', async () => {
  const url = await createTestDatabase();
  const databases = await Promise.all([open(url), open(url), open(url), open(url)]);
  const applied = await Promise.all(databases.map((d) => migrateToLatest(d.db)));
  expect(applied.flat()).toEqual(['001_initial', '002_membership_functions', '005_grace_seat_caps']);
  expect(await migrateToLatest(databases[0]!.db)).toEqual([]);
});

it('runs every session with the configured synchronous_commit, and leaves the server default alone otherwise', async () => {
  const url = await createTestDatabase();
  const setting = async (database: OpenDatabase) => {
    const { rows } = await sql<{ synchronous_commit: string }>`SHOW synchronous_commit`.execute(database.db);
    return rows[0]!.synchronous_commit;
  };
  const relaxed = await openDatabase({ url, dataDir: '', timeoutMs: 5000, synchronousCommit: 'off' });
  opened.push(relaxed);
  const plain = await open(url);
  const serverDefault = await setting(plain);
  expect(await setting(relaxed)).toBe('off');
  expect(serverDefault).not.toBe('off');
  // Inside a transaction too: the setting is the session's, not one statement's.
  expect(
    await relaxed.db
      .transaction()
      .execute((tx) => sql<{ s: string }>`SELECT current_setting('synchronous_commit') AS s`.execute(tx)),
  ).toMatchObject({
    rows: [{ s: 'off' }],
  });
});
