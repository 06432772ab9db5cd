// The deletes behind retention (cluster/retention.ts): old room events, rooms nobody has used for a
// while, and nodes long dead. Each call deletes at most `limit` rows in one short statement, so no
// lock is held for long and a busy room is never waited for (its row is skipped while locked).
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface PruneStore {
  /** Deletes up to `limit` room events older than `olderThanMs`; returns how many went. */
  pruneEvents(olderThanMs: number, limit: number): Promise<number>;
  /** Deletes up to `limit` rooms with no participant whose last change is older than `idleMs`. */
  pruneRooms(idleMs: number, limit: number): Promise<number>;
  /** Deletes up to `limit` nodes marked dead whose last heartbeat is older than `deadForMs`. */
  pruneNodes(deadForMs: number, limit: number): Promise<number>;
}

const ago = (ms: number) => sql<Date>`now() - make_interval(secs => ${ms / 1000}::float8)`;

export class PostgresPruneStore implements PruneStore {
  constructor(private readonly db: Kysely<Database>) {}

  async pruneEvents(olderThanMs: number, limit: number): Promise<number> {
    // Ids grow with time, so walking the primary key from the oldest finds the batch at once.
    const { numAffectedRows } = await sql`
      DELETE FROM room_events WHERE id IN (
        SELECT id FROM room_events WHERE at < ${ago(olderThanMs)} ORDER BY id LIMIT ${limit}
      )`.execute(this.db);
    return Number(numAffectedRows ?? 0);
  }

  async pruneRooms(idleMs: number, limit: number): Promise<number> {
    // SKIP LOCKED: a room a join holds is busy, not idle. A join that commits between this
    // statement's snapshot and its lock has moved updated_at (db/005), and the lock's re-check of
    // updated_at then drops the row, so a room never goes with a participant in it. The last event
    // (a leave, a reap) tells when the room was last used: joins alone do not age it.
    const { numAffectedRows } = await sql`
      DELETE FROM rooms WHERE name IN (
        SELECT r.name FROM rooms r
        WHERE r.updated_at < ${ago(idleMs)}
          AND NOT EXISTS (SELECT 1 FROM participants p WHERE p.room = r.name)
          AND NOT EXISTS (
            SELECT 1 FROM (SELECT e.at FROM room_events e WHERE e.room = r.name ORDER BY e.id DESC LIMIT 1) last
            WHERE last.at >= ${ago(idleMs)}
          )
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      )`.execute(this.db);
    return Number(numAffectedRows ?? 0);
  }

  async pruneNodes(deadForMs: number, limit: number): Promise<number> {
    const { numAffectedRows } = await sql`
      DELETE FROM nodes WHERE id IN (
        SELECT id FROM nodes WHERE status = 'dead' AND heartbeat_at < ${ago(deadForMs)} LIMIT ${limit}
      )`.execute(this.db);
    return Number(numAffectedRows ?? 0);
  }
}
