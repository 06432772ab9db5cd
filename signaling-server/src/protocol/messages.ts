// zod schemas of every client and server message of protocol v1 (shared/protocol.md), and the
// decoder the transport runs on each frame before the domain sees it.
import { z } from 'zod';
import type { IssuedIceServers } from '../ice/ice-servers.js';
import { ProtocolError, ERROR_CODES } from './errors.js';
import { MAX_STATE_VERSION, StorableObject, storableString } from './storable.js';

export const PROTOCOL_VERSION = 1;

export const RequestId = z.union([z.string().max(64), z.number().int().refine(Number.isSafeInteger)]);
export const RoomName = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, '1-128 characters of [A-Za-z0-9_.:-]');
/** Looked up in Postgres (resume, the operator API): only strings it can hold. */
export const ParticipantId = storableString(z.string().min(1).max(64));
const JsonObject = z.record(z.string(), z.unknown());
/** Any JSON value, but present: `data: undefined` (a missing field) is a bad request. */
const JsonValue = z.unknown().refine((v) => v !== undefined, 'required');

export const MAX_NAME_CHARS = 64;

export const JoinMessage = z.object({
  type: z.literal('join'),
  id: RequestId.optional(),
  room: RoomName,
  // name, meta and the resume token's participant id reach Postgres.
  name: storableString(z.string().max(MAX_NAME_CHARS)).optional(),
  meta: StorableObject.optional(),
  token: z.string().max(8192).optional(),
  resume: storableString(z.string().max(512)).optional(),
});
export const LeaveMessage = z.object({ type: z.literal('leave'), id: RequestId.optional(), room: RoomName });
export const SignalMessage = z.object({
  type: z.literal('signal'),
  id: RequestId.optional(),
  room: RoomName,
  to: ParticipantId,
  data: JsonValue,
});
export const BroadcastMessage = z.object({
  type: z.literal('broadcast'),
  id: RequestId.optional(),
  room: RoomName,
  data: JsonValue,
});
export const StateMessage = z.object({
  type: z.literal('state'),
  id: RequestId.optional(),
  room: RoomName,
  data: StorableObject,
  version: z.number().int().min(0).max(MAX_STATE_VERSION),
});
export const PingMessage = z.object({ type: z.literal('ping'), id: RequestId.optional() });
/** Addition: fresh ICE servers for this connection's participant in `room`, before the old ones expire. */
export const IceServersMessage = z.object({ type: z.literal('ice-servers'), id: RequestId.optional(), room: RoomName });

export const ClientMessage = z.discriminatedUnion('type', [
  JoinMessage,
  LeaveMessage,
  SignalMessage,
  BroadcastMessage,
  StateMessage,
  PingMessage,
  IceServersMessage,
]);

export type JoinMessage = z.infer<typeof JoinMessage>;
export type LeaveMessage = z.infer<typeof LeaveMessage>;
export type SignalMessage = z.infer<typeof SignalMessage>;
export type BroadcastMessage = z.infer<typeof BroadcastMessage>;
export type StateMessage = z.infer<typeof StateMessage>;
export type PingMessage = z.infer<typeof PingMessage>;
export type IceServersMessage = z.infer<typeof IceServersMessage>;
export type ClientMessage = z.infer<typeof ClientMessage>;
export type RequestId = z.infer<typeof RequestId>;

const schemaByType: Record<string, z.ZodType<ClientMessage>> = {
  join: JoinMessage,
  leave: LeaveMessage,
  signal: SignalMessage,
  broadcast: BroadcastMessage,
  state: StateMessage,
  ping: PingMessage,
  'ice-servers': IceServersMessage,
};

/** The id to echo in an error for a frame that failed to decode, when the frame had a valid one. */
export function salvageId(value: unknown): RequestId | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const parsed = RequestId.safeParse((value as { id?: unknown }).id);
  return parsed.success ? parsed.data : undefined;
}

export class DecodeError extends ProtocolError {
  constructor(
    message: string,
    readonly requestId: RequestId | undefined,
  ) {
    super('bad-request', message);
  }
}

/** Text frame → typed message, or a DecodeError carrying the id to echo. */
export function decodeClientMessage(text: string): ClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DecodeError('frame is not valid JSON', undefined);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DecodeError('a message must be a JSON object', undefined);
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') throw new DecodeError('type must be a string', salvageId(value));
  const schema = Object.hasOwn(schemaByType, type) ? schemaByType[type] : undefined;
  if (!schema) throw new DecodeError(`unknown type "${type.slice(0, 32)}"`, salvageId(value));
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw new DecodeError(`${type}: ${where}${issue?.message ?? 'invalid'}`, salvageId(value));
  }
  return parsed.data;
}

// ---- server → client -------------------------------------------------------------------------

export const Peer = z.object({ id: z.string(), name: z.string(), meta: JsonObject });
export type Peer = z.infer<typeof Peer>;
export const RoomState = z.object({ version: z.number().int().min(0), data: JsonObject.nullable() });
export type RoomState = z.infer<typeof RoomState>;
/** An RTCIceServer; `username` and `credential` are present on TURN entries. */
export const IceServer = z.object({
  urls: z.array(z.string()),
  username: z.string().optional(),
  credential: z.string().optional(),
});
/** Close code of a connection whose last room an operator removed it from (a protocol addition). */
export const KICKED_CLOSE_CODE = 4001;
export const PEER_LEFT_REASONS = ['left', 'disconnected', 'timeout', 'kicked'] as const;
export type PeerLeftReason = (typeof PEER_LEFT_REASONS)[number];

export const ServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('welcome'), protocol: z.literal(1), node: z.string(), heartbeatMs: z.number() }),
  z.object({
    type: z.literal('joined'),
    id: RequestId.optional(),
    room: RoomName,
    self: Peer,
    peers: z.array(Peer),
    state: RoomState,
    resume: z.string(),
    resumed: z.boolean().optional(),
    iceServers: z.array(IceServer).optional(),
    iceServersTtlMs: z.number().int().min(0).optional(),
  }),
  z.object({
    type: z.literal('ice-servers'),
    id: RequestId.optional(),
    room: RoomName,
    iceServers: z.array(IceServer),
    iceServersTtlMs: z.number().int().min(0).optional(),
  }),
  z.object({ type: z.literal('left'), id: RequestId.optional(), room: RoomName }),
  z.object({ type: z.literal('peer-joined'), room: RoomName, peer: Peer }),
  z.object({
    type: z.literal('peer-left'),
    room: RoomName,
    peer: z.object({ id: z.string() }),
    reason: z.enum(PEER_LEFT_REASONS),
  }),
  z.object({ type: z.literal('signal'), room: RoomName, from: z.string(), data: z.unknown() }),
  z.object({ type: z.literal('broadcast'), room: RoomName, from: z.string(), data: z.unknown() }),
  z.object({ type: z.literal('state'), room: RoomName, version: z.number().int(), data: JsonObject, from: z.string() }),
  z.object({ type: z.literal('ack'), id: RequestId, version: z.number().int().optional() }),
  z.object({ type: z.literal('pong'), id: RequestId.optional() }),
  z.object({ type: z.literal('reconnect'), retryAfterMs: z.number().int().min(0) }),
  // Additions for the operator API (docs/protocol.md): an operator removed this participant, and a
  // message from the server (not from a participant) to the room or to chosen participants.
  z.object({ type: z.literal('kicked'), room: RoomName, reason: z.string().optional() }),
  z.object({ type: z.literal('server'), room: RoomName, data: z.unknown() }),
  z.object({
    type: z.literal('error'),
    id: RequestId.optional(),
    code: z.enum(ERROR_CODES),
    message: z.string(),
    state: RoomState.optional(),
  }),
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

// Encoders build the frame text once; the same string goes to every local socket and the bus.
export const encode = {
  welcome: (node: string, heartbeatMs: number) =>
    JSON.stringify({ type: 'welcome', protocol: PROTOCOL_VERSION, node, heartbeatMs }),
  joined: (
    id: RequestId | undefined,
    room: string,
    self: Peer,
    peers: Peer[],
    state: RoomState,
    resume: string,
    resumed: boolean,
    ice?: IssuedIceServers,
  ) => JSON.stringify({ type: 'joined', id, room, self, peers, state, resume, resumed, ...iceFields(ice) }),
  /** With no ICE servers configured the list is empty. */
  iceServers: (id: RequestId | undefined, room: string, ice: IssuedIceServers | undefined) =>
    JSON.stringify({ type: 'ice-servers', id, room, iceServers: [], ...iceFields(ice) }),
  left: (id: RequestId | undefined, room: string) => JSON.stringify({ type: 'left', id, room }),
  peerJoined: (room: string, peer: Peer) => JSON.stringify({ type: 'peer-joined', room, peer }),
  peerLeft: (room: string, peerId: string, reason: PeerLeftReason) =>
    JSON.stringify({ type: 'peer-left', room, peer: { id: peerId }, reason }),
  signal: (room: string, from: string, data: unknown) => JSON.stringify({ type: 'signal', room, from, data }),
  broadcast: (room: string, from: string, data: unknown) => JSON.stringify({ type: 'broadcast', room, from, data }),
  state: (room: string, version: number, data: unknown, from: string) =>
    JSON.stringify({ type: 'state', room, version, data, from }),
  ack: (id: RequestId, version?: number) => JSON.stringify({ type: 'ack', id, version }),
  pong: (id: RequestId | undefined) => JSON.stringify({ type: 'pong', id }),
  reconnect: (retryAfterMs: number) => JSON.stringify({ type: 'reconnect', retryAfterMs }),
  kicked: (room: string, reason: string | undefined) => JSON.stringify({ type: 'kicked', room, reason }),
  server: (room: string, data: unknown) => JSON.stringify({ type: 'server', room, data }),
  error: (id: RequestId | undefined, code: string, message: string, extra?: Record<string, unknown>) =>
    JSON.stringify({ type: 'error', id, code, message, ...extra }),
};

function iceFields(ice: IssuedIceServers | undefined) {
  return ice ? { iceServers: ice.iceServers, iceServersTtlMs: ice.ttlMs } : {};
}
