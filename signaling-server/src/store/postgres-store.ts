// RoomStore on Postgres (or PGlite) through Kysely. Every membership change locks its room row and
// bumps rooms.seq, so joins, leaves and reaps of one room are serialised cluster-wide and nodes can
// order membership events without asking the database again.
import { sql, type Kysely, type Transaction } from 'kysely';
import { ProtocolError } from '../protocol/errors.js';
import type { Peer, PeerLeftReason, RoomState } from '../protocol/messages.js';
import type { Database } from './schema.js';
import type {
  Announce,
  Departure,
  HeldMembership,
  JoinRequest,
  Membership,
  ResumeRequest,
  ResumeResult,
  RoomRecord,
  RoomChange,
  RoomSnapshot,
  RoomStore,
  StateWrite,
} from './store.js';

type Tx = Transaction<Database>;
type WhereCapable = { where: (...args: any[]) => any };
/** Observes each operation's latency (seconds) and failure; the metrics module plugs in here. */
export type QueryObserver = (op: string, seconds: number, failed: boolean) => void;

const json = (v: unknown) => sql<string>`${JSON.stringify(v)}::text::jsonb`;
const msInterval = (ms: number) => sql<string>`make_interval(secs => ${ms / 1000}::float8)`;

/** Records a change inside its transaction (the webhook outbox); see RoomChange. */
export type ChangeRecorder = (tx: Transaction<Database>, change: RoomChange) => Promise<void>;

export class PostgresStore implements RoomStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly observe: QueryObserver = () => {},
    private readonly recordChange: ChangeRecorder | null = null,
  ) {}

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      const result = await fn();
      this.observe(op, (performance.now() - start) / 1000, false);
      return result;
    } catch (e) {
      this.observe(op, (performance.now() - start) / 1000, true);
      throw e;
    }
  }

  join(req: JoinRequest, announce: Announce<RoomSnapshot>): Promise<RoomSnapshot> {
    return this.timed('join', () =>
      this.db.transaction().execute(async (tx) => {
        // Lock, seq, limit check and insert in one round trip (db/002_membership_functions.sql).
        const { rows } = await sql<{ admitted: boolean; seq: number; version: number; state: RoomState['data']; peers: Peer[] }>`
          SELECT * FROM signaling_join(${req.room}, ${req.participantId}, ${req.nodeId}, ${req.identity}, ${req.name},
                                       ${json(req.meta)}, ${req.resumeHash}, ${req.maxParticipants},
                                       ${req.maxGracePerRoom ?? null}::integer, ${req.maxGracePerIdentity ?? null}::integer)
        `.execute(tx);
        const { admitted, seq, version, state, peers } = rows[0]!;
        // Rolls back, seq included: the seq it took is never handed out again.
        if (!admitted) throw new ProtocolError('room-full', `room is full (${req.maxParticipants})`);
        const snapshot = { self: { id: req.participantId, name: req.name, meta: req.meta }, peers, state: { version, data: state }, seq };
        if (this.recordChange) {
          const { room, identity, nodeId } = req;
          await this.recordChange(tx, { kind: 'joined', room, participant: snapshot.self, identity, nodeId, isFirst: peers.length === 0 });
        }
        await announce(snapshot);
        return snapshot;
      }),
    );
  }

  resume(req: ResumeRequest): Promise<ResumeResult | null> {
    return this.timed('resume', () =>
      this.db.transaction().execute(async (tx) => {
        // Lock the room first, as every membership change does, so lock order is always room → participant.
        const room = await lockRoom(tx, req.room, { mayBeMissing: true });
        if (!room) return null;
        const row = await tx
          .selectFrom('participants')
          .select(['id', 'name', 'meta', 'status', 'node_id', 'resume_hash', 'identity'])
          .select(sql<boolean>`status = 'connected' OR grace_until > now()`.as('is_live'))
          .where('id', '=', req.participantId)
          .where('room', '=', req.room)
          .forUpdate()
          .executeTakeFirst();
        // A retry of a resume whose connection ended before `joined` (its grace is recorded).
        const isRetry = row?.status === 'disconnected' && row.resume_hash === req.nextResumeHash;
        const isKnownHash = row?.resume_hash === req.resumeHash || isRetry;
        if (!row || !row.is_live || !isKnownHash || row.identity !== req.identity) return null;
        const { rows } = await sql<{ peers: Peer[]; epoch: number }>`
          WITH resumed AS (
            UPDATE participants
            SET node_id = ${req.nodeId}, status = 'connected', grace_until = NULL, disconnect_reason = NULL,
                resume_hash = ${req.nextResumeHash}, epoch = epoch + 1
            WHERE id = ${req.participantId}
            RETURNING id, epoch
          ), logged AS (
            INSERT INTO room_events (room, participant_id, node_id, kind)
            SELECT ${req.room}, id, ${req.nodeId}, 'resume' FROM resumed
          )
          SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'meta', meta) ORDER BY joined_at), '[]') AS peers,
                 (SELECT epoch FROM resumed) AS epoch
          FROM participants WHERE room = ${req.room} AND id <> ${req.participantId}
        `.execute(tx);
        const previousNodeId = row.status === 'connected' && row.node_id !== req.nodeId ? row.node_id : null;
        const self: Peer = { id: row.id, name: row.name, meta: row.meta };
        return { self, peers: rows[0]!.peers, state: room.state, seq: room.seq, previousNodeId, epoch: rows[0]!.epoch };
      }),
    );
  }

  leave(m: Membership, nodeId: string, announce: Announce<Departure>, reason: 'left' | 'kicked' = 'left'): Promise<Departure | null> {
    return this.timed('leave', () =>
      this.db.transaction().execute(async (tx) => {
        // Lock, delete, seq and log in one round trip; no seq is taken if nothing left.
        const { rows } = await sql<{ seq: number | null }>`SELECT seq FROM signaling_leave(${m.room}, ${m.participantId}, ${nodeId})`.execute(tx);
        const seq = rows[0]?.seq ?? null;
        if (seq === null) return null;
        const departure: Departure = { room: m.room, participantId: m.participantId, reason, seq };
        await this.recordChange?.(tx, { kind: 'left', room: m.room, participantId: m.participantId, reason });
        await announce(departure);
        return departure;
      }),
    );
  }

  disconnect(ms: HeldMembership[], nodeId: string, graceMs: number, reason: 'disconnected' | 'timeout'): Promise<void> {
    if (ms.length === 0) return Promise.resolve();
    return this.timed('disconnect', async () => {
      await this.db
        .updateTable('participants')
        .set({
          status: 'disconnected',
          disconnect_reason: reason,
          grace_until: sql`now() + ${msInterval(graceMs)}`,
        })
        // A participant resumed since (elsewhere, or here on a new connection) has a new hash.
        .where((eb) => eb.or(ms.map((m) => eb.and([eb('id', '=', m.participantId), eb('resume_hash', '=', m.resumeHash)]))))
        .where('node_id', '=', nodeId)
        .where('status', '=', 'connected')
        .execute();
    });
  }

  writeState(m: Membership, expectedVersion: number, data: Record<string, unknown>, announce: Announce<number>): Promise<StateWrite> {
    return this.timed('state', () =>
      this.db.transaction().execute(async (tx): Promise<StateWrite> => {
        // The compare-and-set takes the room's row lock; the log entry rides along in the same statement.
        const { rows } = await sql<{ version: number }>`
          WITH updated AS (
            UPDATE rooms SET state = ${json(data)}, version = version + 1, updated_at = now()
            WHERE name = ${m.room} AND version = ${expectedVersion}
            RETURNING version
          ), logged AS (
            INSERT INTO room_events (room, participant_id, node_id, kind, detail)
            SELECT ${m.room}, ${m.participantId}, NULL, 'state', jsonb_build_object('version', version) FROM updated
          )
          SELECT version FROM updated
        `.execute(tx);
        const updated = rows[0];
        if (!updated) return { ok: false, current: await readRoomState(tx, m.room) };
        await this.recordChange?.(tx, { kind: 'state', room: m.room, version: updated.version, by: m.participantId });
        await announce(updated.version);
        return { ok: true, version: updated.version };
      }),
    );
  }

  readState(room: string): Promise<RoomState> {
    return this.timed('read_state', () => readRoomState(this.db, room));
  }

  readRoom(room: string): Promise<RoomRecord> {
    return this.timed('read_room', async () => {
      const { rows } = await sql<{ seq: number | null; version: number | null; state: RoomState['data']; peers: Peer[] }>`
        SELECT r.seq::float8 AS seq, r.version, r.state,
               (SELECT coalesce(json_agg(json_build_object('id', p.id, 'name', p.name, 'meta', p.meta) ORDER BY p.joined_at), '[]')
                FROM participants p WHERE p.room = ${room}) AS peers
        FROM (SELECT 1) AS one LEFT JOIN rooms r ON r.name = ${room}
      `.execute(this.db);
      const row = rows[0]!;
      return { seq: row.seq ?? 0, peers: row.peers, state: { version: row.version ?? 0, data: row.state ?? null } };
    });
  }

  heartbeat(nodeId: string, status: 'up' | 'draining'): Promise<void> {
    return this.timed('heartbeat', async () => {
      await this.db
        .insertInto('nodes')
        .values({ id: nodeId, status })
        .onConflict((oc) => oc.column('id').doUpdateSet({ status, heartbeat_at: sql`now()` }))
        .execute();
    });
  }

  evictNode(nodeId: string, announce: Announce<Departure>): Promise<Departure[]> {
    return this.timed('evict_node', async () => {
      await this.db.updateTable('nodes').set({ status: 'dead' }).where('id', '=', nodeId).execute();
      const rows = await this.db
        .selectFrom('participants')
        .select(['id', 'room'])
        .where('node_id', '=', nodeId)
        .where('status', '=', 'connected')
        .execute();
      return this.removeParticipants(
        rows,
        (qb) => qb.where('node_id', '=', nodeId).where('status', '=', 'connected'),
        () => 'disconnected',
        announce,
      );
    });
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.timed('lease', async () => {
      const row = await this.db
        .insertInto('leases')
        .values({ name, holder, expires_at: sql`now() + ${msInterval(ttlMs)}` })
        .onConflict((oc) =>
          oc
            .column('name')
            .doUpdateSet({ holder, expires_at: sql`now() + ${msInterval(ttlMs)}` })
            .where((eb) => eb.or([eb('leases.holder', '=', holder), eb('leases.expires_at', '<', sql<Date>`now()`)])),
        )
        .returning('holder')
        .executeTakeFirst();
      return row?.holder === holder;
    });
  }

  reap(deadAfterMs: number | null, announce: Announce<Departure>): Promise<Departure[]> {
    return this.timed('reap', async () => {
      const dead =
        deadAfterMs === null
          ? []
          : await this.db
        .updateTable('nodes')
        .set({ status: 'dead' })
        .where('status', '<>', 'dead')
        .where(sql<boolean>`heartbeat_at < now() - ${msInterval(deadAfterMs)}`)
        .returning('id')
        .execute();
      const departures: Departure[] = [];
      for (const { id } of dead) departures.push(...(await this.evictNode(id, announce)));
      const expired = await this.db
        .selectFrom('participants')
        .select(['id', 'room'])
        .where('status', '=', 'disconnected')
        .where('grace_until', '<', sql<Date>`now()`)
        .execute();
      departures.push(
        ...(await this.removeParticipants(
          expired,
          (qb) => qb.where('status', '=', 'disconnected').where('grace_until', '<', sql<Date>`now()`),
          (reason) => (reason === 'timeout' ? 'timeout' : 'disconnected'),
          announce,
        )),
      );
      return departures;
    });
  }

  ping(): Promise<void> {
    return this.timed('ping', async () => void (await sql`select 1`.execute(this.db)));
  }

  /**
   * Deletes the given participants room by room, each room under its row lock, re-checking the
   * condition so that a participant who resumed meanwhile is left alone.
   */
  private async removeParticipants(
    rows: { id: string; room: string }[],
    stillMatches: <Q extends WhereCapable>(qb: Q) => Q,
    reasonOf: (stored: string | null) => PeerLeftReason,
    announce: Announce<Departure>,
  ): Promise<Departure[]> {
    const byRoom = new Map<string, string[]>();
    for (const r of rows) byRoom.set(r.room, [...(byRoom.get(r.room) ?? []), r.id]);
    const departures: Departure[] = [];
    for (const [room, ids] of byRoom) {
      const removed = await this.db.transaction().execute(async (tx) => {
        await lockRoom(tx, room);
        const deleted = await stillMatches(tx.deleteFrom('participants').where('id', 'in', ids).where('room', '=', room))
          .returning(['id', 'disconnect_reason'])
          .execute();
        const out: Departure[] = [];
        for (const d of deleted) {
          const seq = await bumpSeq(tx, room);
          const reason = reasonOf(d.disconnect_reason);
          await logEvent(tx, room, d.id, null, 'reap', { reason });
          const departure: Departure = { room, participantId: d.id, reason, seq };
          await this.recordChange?.(tx, { kind: 'left', room, participantId: d.id, reason });
          await announce(departure);
          out.push(departure);
        }
        return out;
      });
      departures.push(...removed);
    }
    return departures;
  }
}

async function lockRoom(tx: Tx, room: string): Promise<{ state: RoomState; seq: number }>;
async function lockRoom(tx: Tx, room: string, opts: { mayBeMissing: true }): Promise<{ state: RoomState; seq: number } | null>;
async function lockRoom(tx: Tx, room: string, opts?: { mayBeMissing: true }) {
  const row = await tx
    .selectFrom('rooms')
    .select(['state', 'version', sql<number>`seq::float8`.as('seq')])
    .where('name', '=', room)
    .forUpdate()
    .executeTakeFirst();
  if (!row) {
    if (opts?.mayBeMissing) return null;
    throw new Error(`room ${room} does not exist`);
  }
  return { state: { version: row.version, data: row.state }, seq: row.seq };
}

async function readRoomState(db: Kysely<Database>, room: string): Promise<RoomState> {
  const row = await db.selectFrom('rooms').select(['state', 'version']).where('name', '=', room).executeTakeFirst();
  return row ? { version: row.version, data: row.state } : { version: 0, data: null };
}

/** Takes the room's next membership sequence number; call with the room row locked. */
async function bumpSeq(tx: Tx, room: string): Promise<number> {
  const row = await tx
    .updateTable('rooms')
    .set({ seq: sql`nextval('membership_seq')` })
    .where('name', '=', room)
    .returning(sql<number>`seq::float8`.as('seq'))
    .executeTakeFirstOrThrow();
  return row.seq;
}

async function logEvent(tx: Tx, room: string, participantId: string | null, nodeId: string | null, kind: string, detail?: unknown) {
  await tx
    .insertInto('room_events')
    .values({ room, participant_id: participantId, node_id: nodeId, kind, detail: detail === undefined ? null : json(detail) })
    .execute();
}
