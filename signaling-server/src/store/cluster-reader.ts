// Cluster-wide answers for the operator API, straight from Postgres: rooms with their counts,
// participants with the node that holds them, nodes with their heartbeat and load. Reads only;
// every change goes through RoomStore so it takes the room's lock and publishes its event.
import { sql, type Kysely } from 'kysely';
import { StoredAccess, type AccessSource } from '../auth/access.js';
import type { Database } from './schema.js';

export interface RoomSummary {
  name: string;
  participants: number;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface ParticipantRecord {
  id: string;
  room: string;
  name: string;
  meta: Record<string, unknown>;
  identity: string | null;
  /** Where the identity and grants came from; null for a participant that joined before it was recorded. */
  source: AccessSource | null;
  grants: string[] | null;
  node: string;
  status: 'connected' | 'disconnected';
  /** While disconnected: the end of its grace period. */
  graceUntil: string | null;
  joinedAt: string;
}

export interface NodeRecord {
  id: string;
  status: 'up' | 'draining' | 'dead';
  startedAt: string;
  heartbeatAt: string;
  heartbeatAgeMs: number;
  /** Open WebSocket connections as the node last reported them; null before its first report. */
  connections: number | null;
  /** Participants the database says this node holds as connected. */
  participants: number;
}

// Kysely types a timestamp column as its ColumnType; pg hands back a Date.
const iso = (d: unknown): string | null => (d === null || d === undefined ? null : new Date(d as Date).toISOString());

export class ClusterReader {
  constructor(private readonly db: Kysely<Database>) {}

  /** Rooms with at least one participant, by name, after `after` (keyset paging). */
  async listRooms(after: string | null, limit: number): Promise<RoomSummary[]> {
    let query = this.db
      .selectFrom('rooms as r')
      .innerJoin('participants as p', 'p.room', 'r.name')
      .select(['r.name', 'r.version', 'r.created_at', 'r.updated_at', sql<number>`count(p.id)::int`.as('participants')])
      .groupBy('r.name')
      .orderBy('r.name')
      .limit(limit);
    if (after !== null) query = query.where('r.name', '>', after);
    const rows = await query.execute();
    return rows.map((r) => ({
      name: r.name,
      participants: r.participants,
      version: r.version,
      createdAt: iso(r.created_at)!,
      updatedAt: iso(r.updated_at)!,
    }));
  }

  /** The room and its participants; null when it has never existed. */
  async getRoom(
    name: string,
  ): Promise<{ room: RoomSummary; state: Record<string, unknown> | null; participants: ParticipantRecord[] } | null> {
    const row = await this.db
      .selectFrom('rooms')
      .select(['name', 'version', 'state', 'created_at', 'updated_at'])
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) return null;
    const participants = await this.listParticipants(name);
    return {
      room: {
        name: row.name,
        participants: participants.length,
        version: row.version,
        createdAt: iso(row.created_at)!,
        updatedAt: iso(row.updated_at)!,
      },
      state: row.state,
      participants,
    };
  }

  async listParticipants(room: string): Promise<ParticipantRecord[]> {
    const rows = await this.db.selectFrom('participants').selectAll().where('room', '=', room).orderBy('joined_at').execute();
    return rows.map(toParticipant);
  }

  async getParticipant(room: string, id: string): Promise<ParticipantRecord | null> {
    const row = await this.db
      .selectFrom('participants')
      .selectAll()
      .where('room', '=', room)
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toParticipant(row) : null;
  }

  /** Every node that ever heartbeat here and is not known dead, or all of them with `includeDead`. */
  async listNodes(includeDead: boolean): Promise<NodeRecord[]> {
    let query = this.db
      .selectFrom('nodes as n')
      .leftJoin('node_load as l', 'l.node_id', 'n.id')
      .select([
        'n.id',
        'n.status',
        'n.started_at',
        'n.heartbeat_at',
        'l.connections',
        sql<number>`(extract(epoch from now() - n.heartbeat_at) * 1000)::float8`.as('age_ms'),
        sql<number>`(SELECT count(*)::int FROM participants p WHERE p.node_id = n.id AND p.status = 'connected')`.as(
          'participants',
        ),
      ])
      .orderBy('n.id');
    if (!includeDead) query = query.where('n.status', '<>', 'dead');
    const rows = await query.execute();
    return rows.map((r) => ({
      id: r.id,
      status: r.status,
      startedAt: iso(r.started_at)!,
      heartbeatAt: iso(r.heartbeat_at)!,
      heartbeatAgeMs: Math.max(0, Math.round(r.age_ms)),
      connections: r.connections ?? null,
      participants: r.participants,
    }));
  }

  /** Whether a node is known and not dead. */
  async isLiveNode(id: string): Promise<boolean> {
    const row = await this.db.selectFrom('nodes').select('status').where('id', '=', id).executeTakeFirst();
    return row !== undefined && row.status !== 'dead';
  }

  /** Records this node's open connections; read back by listNodes(). */
  async reportLoad(nodeId: string, connections: number): Promise<void> {
    await this.db
      .insertInto('node_load')
      .values({ node_id: nodeId, connections })
      .onConflict((oc) => oc.column('node_id').doUpdateSet({ connections, reported_at: sql`now()` }))
      .execute();
  }
}

function toParticipant(r: {
  id: string;
  room: string;
  name: string;
  meta: Record<string, unknown>;
  identity: string | null;
  access: unknown;
  node_id: string;
  status: 'connected' | 'disconnected';
  grace_until: unknown;
  joined_at: unknown;
}): ParticipantRecord {
  const access = StoredAccess.safeParse(r.access);
  return {
    id: r.id,
    room: r.room,
    name: r.name,
    meta: r.meta,
    identity: r.identity,
    source: access.success ? access.data.source : null,
    grants: access.success ? access.data.grants : null,
    node: r.node_id,
    status: r.status,
    graceUntil: iso(r.grace_until),
    joinedAt: iso(r.joined_at)!,
  };
}
