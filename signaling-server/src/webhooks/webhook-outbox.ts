// Writes webhook events into the outbox table inside the transaction of the change they report
// (PostgresStore calls record() before its commit), so an event exists exactly when its change
// does. One row per event and endpoint; WebhookDispatcher delivers and deletes them.
import { randomBytes } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { Database } from '../store/schema.js';
import type { RoomChange } from '../store/store.js';

export const WEBHOOK_TYPES = [
  'room.started',
  'room.finished',
  'participant.joined',
  'participant.left',
  'room.state.changed',
] as const;
export type WebhookType = (typeof WEBHOOK_TYPES)[number];

interface WebhookEvent {
  type: WebhookType;
  data: Record<string, unknown>;
}

const newEventId = () => `msg_${randomBytes(16).toString('base64url')}`;

export class WebhookOutbox {
  constructor(private readonly endpoints: string[]) {}

  /** A ChangeRecorder for PostgresStore. */
  readonly record = async (tx: Transaction<Database>, change: RoomChange): Promise<void> => {
    const events = await this.eventsOf(tx, change);
    const timestamp = new Date().toISOString();
    const rows = events.flatMap(({ type, data }) => {
      const eventId = newEventId();
      const body = JSON.stringify({ type, timestamp, data });
      return this.endpoints.map((endpoint) => ({ endpoint, room: change.room, event_id: eventId, type, body }));
    });
    if (rows.length > 0) await tx.insertInto('webhook_outbox').values(rows).execute();
  };

  private async eventsOf(tx: Transaction<Database>, change: RoomChange): Promise<WebhookEvent[]> {
    const { room } = change;
    switch (change.kind) {
      case 'joined': {
        const { participant, identity, nodeId } = change;
        const joined: WebhookEvent = {
          type: 'participant.joined',
          data: { room, participant: { ...participant, identity }, node: nodeId },
        };
        return change.isFirst ? [{ type: 'room.started', data: { room } }, joined] : [joined];
      }
      case 'left': {
        const left: WebhookEvent = {
          type: 'participant.left',
          data: { room, participant: { id: change.participantId }, reason: change.reason },
        };
        // Under the room's lock: nobody can join between this count and the commit.
        const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM participants WHERE room = ${room}`.execute(tx);
        return rows[0]!.n === 0 ? [left, { type: 'room.finished', data: { room } }] : [left];
      }
      case 'state':
        return [{ type: 'room.state.changed', data: { room, version: change.version, by: change.by } }];
    }
  }
}
