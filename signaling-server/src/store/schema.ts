// Kysely table types for the schema in db/. Keep in step with the SQL migrations.
import type { ColumnType, Generated } from 'kysely';

type Json = ColumnType<unknown, string, string>;
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface Database {
  rooms: {
    name: string;
    state: ColumnType<Record<string, unknown> | null, string | null, string | null>;
    version: Generated<number>;
    seq: Generated<string>;
    created_at: Generated<Timestamp>;
    updated_at: Generated<Timestamp>;
  };
  participants: {
    id: string;
    room: string;
    node_id: string;
    identity: string | null;
    name: string;
    meta: ColumnType<Record<string, unknown>, string, string>;
    status: 'connected' | 'disconnected';
    disconnect_reason: string | null;
    grace_until: ColumnType<Date | null, Date | string | null, Date | string | null>;
    resume_hash: string;
    epoch: Generated<number>;
    /** auth/access.ts StoredAccess; NULL on rows from before db/007. */
    access: ColumnType<unknown, string | null | undefined, string | null>;
    joined_at: Generated<Timestamp>;
  };
  room_events: {
    id: Generated<string>;
    room: string;
    participant_id: string | null;
    node_id: string | null;
    kind: string;
    detail: Json | null;
    at: Generated<Timestamp>;
  };
  nodes: {
    id: string;
    status: 'up' | 'draining' | 'dead';
    started_at: Generated<Timestamp>;
    heartbeat_at: Generated<Timestamp>;
    bus_up: Generated<boolean>;
  };
  leases: { name: string; holder: string; expires_at: Timestamp };
  node_load: { node_id: string; connections: number; reported_at: Generated<Timestamp> };
  webhook_outbox: {
    id: Generated<string>;
    endpoint: string;
    room: string;
    event_id: string;
    type: string;
    body: string;
    created_at: Generated<Timestamp>;
    attempts: Generated<number>;
    next_attempt_at: Generated<Timestamp>;
    last_error: string | null;
  };
}
