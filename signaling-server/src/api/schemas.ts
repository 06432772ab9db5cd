// zod schemas of the operator API's requests and responses. The router validates with them and
// the OpenAPI document (openapi.ts) is generated from them, so the two cannot drift.
import { z } from 'zod';
import { ACCESS_SOURCES } from '../auth/access.js';
import { GRANTS } from '../auth/token-verifier.js';
import { ParticipantId, RoomName } from '../protocol/messages.js';
import { MAX_STATE_VERSION, StorableObject } from '../protocol/storable.js';

const JsonObject = z.record(z.string(), z.unknown());
const Timestamp = z.string().describe('ISO 8601 time');

export const ErrorBody = z.object({
  error: z.enum([
    'bad-request',
    'unauthorized',
    'forbidden',
    'not-found',
    'method-not-allowed',
    'version-conflict',
    'too-large',
    'api-disabled',
    'unavailable',
    'internal',
  ]),
  message: z.string(),
  state: z.object({ version: z.number().int(), data: JsonObject.nullable() }).optional(),
});

/** A page's cursor is the last room name of the page before, base64url-encoded. */
export const encodeCursor = (name: string): string => Buffer.from(name).toString('base64url');
export const decodeCursor = (cursor: string): string => Buffer.from(cursor, 'base64url').toString('utf8');

export const RoomParams = z.object({ room: RoomName });
export const ParticipantParams = z.object({ room: RoomName, id: ParticipantId });
export const NodeParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/) });

export const RoomListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z
    .string()
    .max(256)
    .refine((cursor) => RoomName.safeParse(decodeCursor(cursor)).success, 'not a cursor this API handed out')
    .optional()
    .describe('nextCursor of the previous page'),
});
export const ClusterQuery = z.object({ dead: z.enum(['true', 'false']).default('false').describe('include dead nodes') });

export const RoomSummary = z.object({
  name: z.string(),
  participants: z.number().int(),
  version: z.number().int().describe('room state version'),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const RoomList = z.object({
  rooms: z.array(RoomSummary),
  nextCursor: z.string().nullable().describe('pass as cursor for the next page; null on the last'),
});

export const Participant = z.object({
  id: z.string(),
  room: z.string(),
  name: z.string(),
  meta: JsonObject,
  identity: z.string().nullable().describe("the token's or the join hook's subject, when either named one"),
  source: z
    .enum(ACCESS_SOURCES)
    .nullable()
    .describe('where the identity and grants came from; null for a participant that joined before this was recorded'),
  grants: z.array(z.enum(GRANTS)).nullable().describe('what the participant may do'),
  node: z.string().describe('the node that holds (or last held) its socket'),
  status: z.enum(['connected', 'disconnected']),
  graceUntil: Timestamp.nullable().describe('while disconnected: when its grace period ends'),
  joinedAt: Timestamp,
});

export const RoomState = z.object({ version: z.number().int().min(0), data: JsonObject.nullable() });

export const RoomDetail = z.object({ room: RoomSummary, state: RoomState, participants: z.array(Participant) });
export const ParticipantList = z.object({ participants: z.array(Participant) });

export const RemoveBody = z.object({
  reason: z.string().max(256).optional().describe('sent to the removed client in its `kicked` message'),
});
export const RemoveResult = z.object({ removed: z.literal(true) });
export const CloseBody = RemoveBody;
export const CloseResult = z.object({ removed: z.number().int().describe('participants removed') });

export const SendBody = z.object({
  data: z
    .unknown()
    .refine((v) => v !== undefined, 'required')
    .describe('any JSON: the `data` of the `server` message'),
  to: z.array(ParticipantId).min(1).max(500).optional().describe('participant ids; absent: the whole room'),
});
export const SendResult = z.object({
  sent: z.array(z.string()).nullable().describe('the participants it was sent to; null when sent to the whole room'),
  notFound: z.array(z.string()).describe('ids in `to` that are not in the room (nothing sent to them)'),
});

export const StateBody = z.object({
  version: z.number().int().min(0).max(MAX_STATE_VERSION).describe('the version the write expects the room to be at'),
  data: StorableObject,
});
export const StateResult = z.object({ version: z.number().int() });

export const NodeInfo = z.object({
  id: z.string(),
  status: z.enum(['up', 'draining', 'dead']),
  startedAt: Timestamp,
  heartbeatAt: Timestamp,
  heartbeatAgeMs: z.number().int(),
  connections: z.number().int().nullable().describe('open WebSockets at its last report, on every endpoint (/ws and y-webrtc)'),
  participants: z.number().int().describe('participants the database says it holds as connected'),
});
export const ClusterInfo = z.object({ node: z.string().describe('the node that answered'), nodes: z.array(NodeInfo) });
export const DrainResult = z.object({ node: z.string(), accepted: z.literal(true) });
export const OpenApiDocument = z.record(z.string(), z.unknown()).describe('an OpenAPI 3.1 document');
