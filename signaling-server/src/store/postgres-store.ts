// RoomStore on Postgres (or PGlite) through Kysely. Every membership change locks its room row and
// bumps rooms.seq, so joins, leaves and reaps of one room are serialised cluster-wide and nodes can
// order membership events without asking the database again.
import { sql, type Kysely, type Transaction } from 'kysely';
import { PublishOutcomeUnknown } from '../bus/bus.js';
import { StoredAccess } from '../auth/access.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Peer, PeerLeftReason, RoomState } from '../protocol/messages.js';
import type { Database } from './schema.js';
import {
  CommitOutcomeUnknown,
  type Announce,
  type Departure,
  type HeartbeatResult,
  type HeldMembership,
  type JoinRequest,
  type Membership,
  type OnRoomFailure,
  type ResumeRequest,
  type ResumeResult,
  type RoomChange,
  type RoomRecord,
  type RoomSnapshot,
  type RoomStore,
  type StateWrite,
  type UnsettledChange,
} from './store.js';

type Tx = Transaction<Database>;
type WhereCapable = { where: (...args: any[]) => any };
/** Observes each operation's latency (seconds) and failure; the metrics module plugs in here. */
export type QueryObserver = (op: string, seconds: number, failed: boolean) => void;

export interface PostgresStoreOptions {
  /**
   * Where heartbeats and the reaper lease go: a pool of their own, so that joins holding every
   * connection of the main pool (across a slow bus publish, say) cannot starve them and get this
   * node judged dead. Defaults to the main database.
   */
  livenessDb?: Kysely<Database>;
  /** Told of every join or leave whose COMMIT failed, before the caller gets CommitOutcomeUnknown. */
  onCommitUnknown?: (change: UnsettledChange) => void;
  /** Records each change inside its own transaction (the webhook outbox). */
  recordChange?: ChangeRecorder;
}

/**
 * Tries `announce` every REANNOUNCE_MS until the bus has taken it, at most REANNOUNCE_ATTEMPTS
 * times. One whose outcome is unknown counts as taken: it waits in Redis (a stall), and copies
 * piled up behind it would all run when Redis goes on.
 */
async function announceUntilTaken(announce: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; attempt < REANNOUNCE_ATTEMPTS; attempt++) {
    if (
      await announce().then(
        () => true,
        (err: unknown) => err instanceof PublishOutcomeUnknown,
      )
    )
      return;
    await new Promise((resolve) => setTimeout(resolve, REANNOUNCE_MS).unref());
  }
}
const REANNOUNCE_MS = 500;
/** 30 s: a bus back within that (a reconnect, a failover) gets the state to every peer. */
const REANNOUNCE_ATTEMPTS = 60;

const json = (v: unknown) => sql<string>`${JSON.stringify(v)}::text::jsonb`;
/** A stored access as the row holds it; one that does not parse is treated as not recorded. */
function parseAccess(v: unknown): StoredAccess | null {
  const parsed = StoredAccess.safeParse(v);
  return parsed.success ? parsed.data : null;
}
const msInterval = (ms: number) => sql<string>`make_interval(secs => ${ms / 1000}::float8)`;

/** Records a change inside its transaction (the webhook outbox); see RoomChange. */
export type ChangeRecorder = (tx: Transaction<Database>, change: RoomChange) => Promise<void>;

export class PostgresStore implements RoomStore {
  private readonly liveness: Kysely<Database>;
  private answeredAt = 0;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly observe: QueryObserver = () => {},
    private readonly opts: PostgresStoreOptions = {},
  ) {
    this.liveness = opts.livenessDb ?? db;
  }

  /**
   * Runs `work` in a transaction. A COMMIT that fails (it timed out, its connection died) may
   * still have committed, after the change's event went out: the change is reported for settling
   * and the caller gets CommitOutcomeUnknown. So is a change rolled back because its event's
   * publish failed after it was sent (PublishOutcomeUnknown): peers may get the event anyway.
   */
  private async transact<T>(change: UnsettledChange, work: (tx: Tx) => Promise<T>): Promise<T> {
    const tx = await this.db.startTransaction().execute();
    let result: T;
    try {
      result = await work(tx);
    } catch (err) {
      await tx
        .rollback()
        .execute()
        .catch(() => {}); // a dead connection rolls back by itself
      if (err instanceof PublishOutcomeUnknown) {
        // Rolled back, but its event may still reach the peers: settled as a COMMIT that failed.
        this.opts.onCommitUnknown?.(change);
        throw new CommitOutcomeUnknown(change.op, err);
      }
      throw err;
    }
    try {
      await tx.commit().execute();
    } catch (err) {
      // Releases the connection; the pool destroys it if it is broken (database.ts).
      await tx
        .rollback()
        .execute()
        .catch(() => {});
      this.opts.onCommitUnknown?.(change);
      throw new CommitOutcomeUnknown(change.op, err);
    }
    return result;
  }

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      const result = await fn();
      this.answeredAt = performance.now();
      this.observe(op, (performance.now() - start) / 1000, false);
      return result;
    } catch (e) {
      this.observe(op, (performance.now() - start) / 1000, true);
      throw e;
    }
  }

  join(req: JoinRequest, announce: Announce<RoomSnapshot>): Promise<RoomSnapshot> {
    const change: UnsettledChange = { op: 'join', room: req.room, participantId: req.participantId, nodeId: req.nodeId };
    return this.timed('join', () =>
      this.transact(change, async (tx) => {
        // Lock, seq, limit check and insert in one round trip (db/002_membership_functions.sql).
        const { rows } = await sql<{ admitted: boolean; seq: number; version: number; state: RoomState['data']; peers: Peer[] }>`
          SELECT * FROM signaling_join(${req.room}, ${req.participantId}, ${req.nodeId}, ${req.identity}, ${req.name},
                                       ${json(req.meta)}, ${req.resumeHash}, ${req.maxParticipants},
                                       ${req.maxGracePerRoom ?? null}::integer, ${req.maxGracePerIdentity ?? null}::integer,
                                       ${req.access ? json(req.access) : null}::jsonb)
        `.execute(tx);
        const { admitted, seq, version, state, peers } = rows[0]!;
        // Rolls back, seq included: the seq it took is never handed out again.
        if (!admitted) throw new ProtocolError('room-full', `room is full (${req.maxParticipants})`);
        const snapshot = {
          self: { id: req.participantId, name: req.name, meta: req.meta },
          peers,
          state: { version, data: state },
          seq,
        };
        if (this.opts.recordChange) {
          const { room, identity, nodeId } = req;
          await this.opts.recordChange(tx, {
            kind: 'joined',
            room,
            participant: snapshot.self,
            identity,
            nodeId,
            isFirst: peers.length === 0,
          });
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
          .select(['id', 'name', 'meta', 'status', 'node_id', 'resume_hash', 'identity', 'access'])
          .select(sql<boolean>`status = 'connected' OR grace_until > now()`.as('is_live'))
          .where('id', '=', req.participantId)
          .where('room', '=', req.room)
          .forUpdate()
          .executeTakeFirst();
        // A retry of a resume whose connection ended before `joined` (its grace is recorded).
        const isRetry = row?.status === 'disconnected' && row.resume_hash === req.nextResumeHash;
        const isKnownHash = row?.resume_hash === req.resumeHash || isRetry;
        const isOtherIdentity = req.identity !== undefined && row?.identity !== req.identity;
        if (!row || !row.is_live || !isKnownHash || isOtherIdentity) return null;
        const { rows } = await sql<{ peers: Peer[]; epoch: number }>`
          WITH resumed AS (
            UPDATE participants
            SET node_id = ${req.nodeId}, status = 'connected', grace_until = NULL, disconnect_reason = NULL,
                resume_hash = ${req.nextResumeHash}, epoch = epoch + 1,
                access = coalesce(${req.access ? json(req.access) : null}::jsonb, access)
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
        return {
          self,
          peers: rows[0]!.peers,
          state: room.state,
          seq: room.seq,
          previousNodeId,
          lastNodeId: row.node_id,
          epoch: rows[0]!.epoch,
          identity: row.identity,
          access: req.access ?? parseAccess(row.access),
        };
      }),
    );
  }

  leave(
    m: Membership,
    nodeId: string,
    announce: Announce<Departure>,
    reason: 'left' | 'kicked' = 'left',
  ): Promise<Departure | null> {
    const change: UnsettledChange = { op: 'leave', ...m, nodeId };
    return this.timed('leave', () =>
      this.transact(change, async (tx) => {
        // Lock, delete, seq and log in one round trip; no seq is taken if nothing left.
        const { rows } = await sql<{
          seq: number | null;
        }>`SELECT seq FROM signaling_leave(${m.room}, ${m.participantId}, ${nodeId})`.execute(tx);
        const seq = rows[0]?.seq ?? null;
        if (seq === null) return null;
        const departure: Departure = { room: m.room, participantId: m.participantId, reason, seq };
        await this.opts.recordChange?.(tx, { kind: 'left', room: m.room, participantId: m.participantId, reason });
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

  writeState(
    m: Membership,
    expectedVersion: number,
    data: Record<string, unknown>,
    announce: Announce<number>,
  ): Promise<StateWrite> {
    return this.timed('state', async () => {
      let lateEvent: PublishOutcomeUnknown | undefined;
      const written = await this.db.transaction().execute(async (tx): Promise<StateWrite> => {
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
        await this.opts.recordChange?.(tx, { kind: 'state', room: m.room, version: updated.version, by: m.participantId });
        try {
          await announce(updated.version);
        } catch (err) {
          if (!(err instanceof PublishOutcomeUnknown)) throw err;
          // Peers may get this version yet (Redis may run the publish late): kept, the database
          // holds what they hold, where a rollback would leave them a version it never stored.
          lateEvent = err;
        }
        return { ok: true, version: updated.version };
      });
      if (lateEvent && written.ok) {
        // Stored, but the publish may never have run (its connection dropped first): announced
        // again in the background until the bus takes it. Peers that got the first copy drop
        // this one (same version). The writer cannot be told its peers have it: its retry meets
        // version-conflict with the value it wrote.
        void announceUntilTaken(() => announce(written.version));
        throw lateEvent;
      }
      return written;
    });
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

  heartbeat(nodeId: string, status: 'up' | 'draining', isBusUp = true): Promise<HeartbeatResult> {
    return this.timed('heartbeat', async () => {
      // A row the reaper marked dead stays dead: reviving it silently would leave this node serving
      // participants the cluster already removed. The node must notice and register again.
      const row = await this.liveness
        .insertInto('nodes')
        .values({ id: nodeId, status, bus_up: isBusUp })
        .onConflict((oc) =>
          oc
            .column('id')
            .doUpdateSet({ status, heartbeat_at: sql`now()`, bus_up: isBusUp })
            .where('nodes.status', '<>', 'dead'),
        )
        .returning('id')
        .executeTakeFirst();
      return row ? 'alive' : 'judged-dead';
    });
  }

  hasPeerWithBus(nodeId: string, withinMs: number): Promise<boolean> {
    return this.timed('peer_with_bus', async () => {
      const row = await this.liveness
        .selectFrom('nodes')
        .select('id')
        .where('id', '<>', nodeId)
        .where('status', '<>', 'dead')
        .where('bus_up', '=', true)
        .where(sql<boolean>`heartbeat_at >= now() - ${msInterval(withinMs)}`)
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    });
  }

  registerNode(nodeId: string, status: 'up' | 'draining'): Promise<void> {
    return this.timed('register_node', async () => {
      await this.liveness
        .insertInto('nodes')
        .values({ id: nodeId, status })
        .onConflict((oc) => oc.column('id').doUpdateSet({ status, heartbeat_at: sql`now()`, started_at: sql`now()` }))
        .execute();
    });
  }

  evictNode(nodeId: string, announce: Announce<Departure>, onRoomFailure?: OnRoomFailure): Promise<Departure[]> {
    return this.timed('evict_node', async () => {
      const departures = await this.removeHeldBy(nodeId, null, announce, onRoomFailure);
      await this.markDeadIfEmpty(nodeId, null);
      return departures;
    });
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.timed('lease', async () => {
      const row = await this.liveness
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

  reap(
    deadAfterMs: number | null,
    announce: Announce<Departure>,
    onRoomFailure?: OnRoomFailure,
    spared: readonly string[] = [],
  ): Promise<Departure[]> {
    return this.timed('reap', async () => {
      const departures: Departure[] = [];
      if (deadAfterMs !== null) {
        // Silent nodes not yet marked dead, and silent nodes marked dead that still hold someone
        // (an earlier round failed part way, or a join committed just after the mark).
        const { rows: silent } = await sql<{ id: string }>`
          SELECT n.id FROM nodes n
          WHERE n.heartbeat_at < now() - ${msInterval(deadAfterMs)}
            AND (n.status <> 'dead' OR EXISTS (SELECT 1 FROM participants p WHERE p.node_id = n.id AND p.status = 'connected'))
        `.execute(this.db);
        const isSpared = new Set(spared);
        for (const { id } of silent) {
          if (isSpared.has(id)) continue;
          departures.push(...(await this.removeHeldBy(id, deadAfterMs, announce, onRoomFailure)));
          await this.markDeadIfEmpty(id, deadAfterMs);
        }
      }
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
          onRoomFailure,
        )),
      );
      return departures;
    });
  }

  retractJoin(m: Membership, nodeId: string, announce: Announce<Departure>): Promise<Departure | null> {
    return this.timed('retract_join', () =>
      this.db.transaction().execute(async (tx) => {
        // No room row: the join created it and rolled back, so no one else was in it to see the join.
        if (!(await lockRoom(tx, m.room, { mayBeMissing: true }))) return null;
        const deleted = await tx
          .deleteFrom('participants')
          .where('id', '=', m.participantId)
          .where('room', '=', m.room)
          .executeTakeFirst();
        const seq = await bumpSeq(tx, m.room);
        await logEvent(tx, m.room, m.participantId, nodeId, 'retract');
        const departure: Departure = { room: m.room, participantId: m.participantId, reason: 'disconnected', seq };
        // Only a join that did commit wrote its participant.joined webhook: only it gets a `left`.
        if (Number(deleted.numDeletedRows) > 0) {
          await this.opts.recordChange?.(tx, {
            kind: 'left',
            room: m.room,
            participantId: m.participantId,
            reason: 'disconnected',
          });
        }
        await announce(departure);
        return departure;
      }),
    );
  }

  /**
   * Removes the participants a node holds as connected. With `silentForMs`, only while its
   * heartbeat is still that old: a node that beat again meanwhile keeps the rest.
   */
  private async removeHeldBy(
    nodeId: string,
    silentForMs: number | null,
    announce: Announce<Departure>,
    onRoomFailure: OnRoomFailure | undefined,
  ): Promise<Departure[]> {
    const rows = await this.db
      .selectFrom('participants')
      .select(['id', 'room'])
      .where('node_id', '=', nodeId)
      .where('status', '=', 'connected')
      .execute();
    return this.removeParticipants(
      rows,
      (qb) => {
        const held = qb.where('node_id', '=', nodeId).where('status', '=', 'connected');
        if (silentForMs === null) return held;
        return held.where(
          sql<boolean>`NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = ${nodeId} AND n.heartbeat_at >= now() - ${msInterval(silentForMs)})`,
        );
      },
      () => 'disconnected',
      announce,
      onRoomFailure,
    );
  }

  /** Marks a node dead once it holds nobody (and, with `silentForMs`, only while still silent). */
  private async markDeadIfEmpty(nodeId: string, silentForMs: number | null): Promise<void> {
    await this.db
      .updateTable('nodes')
      .set({ status: 'dead' })
      .where('id', '=', nodeId)
      .where('status', '<>', 'dead')
      .where(sql<boolean>`NOT EXISTS (SELECT 1 FROM participants p WHERE p.node_id = ${nodeId} AND p.status = 'connected')`)
      .$if(silentForMs !== null, (qb) => qb.where(sql<boolean>`heartbeat_at < now() - ${msInterval(silentForMs ?? 0)}`))
      .execute();
  }

  lastAnsweredAt(): number {
    return this.answeredAt;
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
    onRoomFailure: OnRoomFailure | undefined,
  ): Promise<Departure[]> {
    const byRoom = new Map<string, string[]>();
    for (const r of rows) byRoom.set(r.room, [...(byRoom.get(r.room) ?? []), r.id]);
    const departures: Departure[] = [];
    const failures: unknown[] = [];
    for (const [room, ids] of byRoom) {
      // One room failing (its lock held by a frozen session, its event not published) must not
      // keep the other rooms' participants in place: its transaction rolls back, the rest go on.
      const removed = await this.db
        .transaction()
        .execute(async (tx) => {
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
            await this.opts.recordChange?.(tx, { kind: 'left', room, participantId: d.id, reason });
            await announce(departure);
            out.push(departure);
          }
          return out;
        })
        .catch((err: unknown) => {
          if (onRoomFailure) onRoomFailure(room, err);
          else failures.push(err);
          return [];
        });
      departures.push(...removed);
    }
    if (failures.length > 0) throw failures[0];
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

async function logEvent(
  tx: Tx,
  room: string,
  participantId: string | null,
  nodeId: string | null,
  kind: string,
  detail?: unknown,
) {
  await tx
    .insertInto('room_events')
    .values({ room, participant_id: participantId, node_id: nodeId, kind, detail: detail === undefined ? null : json(detail) })
    .execute();
}
