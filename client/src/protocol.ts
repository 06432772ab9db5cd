// Wire types of signaling protocol v1 (docs/protocol.md), written out for the client so that it
// depends on nothing of the server. Only the shapes the client sends or reads are described.

export const PROTOCOL_VERSION = 1;

export type RequestId = string | number;
export type JsonObject = Record<string, unknown>;

/** Error codes the server sends in `error` frames. */
export type ServerErrorCode =
  | 'bad-request'
  | 'too-large'
  | 'unauthorized'
  | 'forbidden'
  | 'not-joined'
  | 'already-joined'
  | 'room-full'
  | 'too-many-rooms'
  | 'peer-not-found'
  | 'version-conflict'
  | 'rate-limited'
  | 'unavailable'
  | 'internal';

export interface Peer {
  id: string;
  name: string;
  meta: JsonObject;
}

export interface RoomState<T extends JsonObject = JsonObject> {
  version: number;
  data: T | null;
}

export type PeerLeftReason = 'left' | 'disconnected' | 'timeout' | 'kicked';

/** An ICE server as `RTCPeerConnection` takes it; TURN entries carry short-lived credentials. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

// ---- client → server --------------------------------------------------------------------------

export interface JoinRequest {
  type: 'join';
  id?: RequestId;
  room: string;
  name?: string;
  meta?: JsonObject;
  token?: string;
  resume?: string;
}
export interface LeaveRequest {
  type: 'leave';
  id?: RequestId;
  room: string;
}
export interface SignalRequest {
  type: 'signal';
  id?: RequestId;
  room: string;
  to: string;
  data: unknown;
}
export interface BroadcastRequest {
  type: 'broadcast';
  id?: RequestId;
  room: string;
  data: unknown;
}
export interface StateRequest {
  type: 'state';
  id?: RequestId;
  room: string;
  data: JsonObject;
  version: number;
}
export interface PingRequest {
  type: 'ping';
  id?: RequestId;
}
/** Addition to protocol v1: fresh ICE servers for this client's participant in `room`. */
export interface IceServersRequest {
  type: 'ice-servers';
  id?: RequestId;
  room: string;
}

export type ClientMessage =
  JoinRequest | LeaveRequest | SignalRequest | BroadcastRequest | StateRequest | PingRequest | IceServersRequest;

// ---- server → client --------------------------------------------------------------------------

export interface WelcomeMessage {
  type: 'welcome';
  protocol: number;
  node: string;
  heartbeatMs: number;
}
export interface JoinedMessage {
  type: 'joined';
  id?: RequestId;
  room: string;
  self: Peer;
  peers: Peer[];
  state: RoomState;
  resume: string;
  resumed?: boolean;
  /** Present when the cluster hands out ICE servers; valid for `iceServersTtlMs`. */
  iceServers?: IceServer[];
  iceServersTtlMs?: number;
}
export interface IceServersMessage {
  type: 'ice-servers';
  id?: RequestId;
  room: string;
  iceServers: IceServer[];
  iceServersTtlMs?: number;
}
export interface LeftMessage {
  type: 'left';
  id?: RequestId;
  room: string;
}
export interface PeerJoinedMessage {
  type: 'peer-joined';
  room: string;
  peer: Peer;
}
export interface PeerLeftMessage {
  type: 'peer-left';
  room: string;
  peer: { id: string };
  reason: PeerLeftReason;
}
export interface SignalMessage {
  type: 'signal';
  room: string;
  from: string;
  data: unknown;
}
export interface BroadcastMessage {
  type: 'broadcast';
  room: string;
  from: string;
  data: unknown;
}
export interface StateMessage {
  type: 'state';
  room: string;
  version: number;
  data: JsonObject;
  from: string;
}
export interface AckMessage {
  type: 'ack';
  id: RequestId;
  version?: number;
}
export interface PongMessage {
  type: 'pong';
  id?: RequestId;
}
export interface ReconnectMessage {
  type: 'reconnect';
  retryAfterMs: number;
}
/** Addition to protocol v1: an operator removed this client's participant from `room`. */
export interface KickedMessage {
  type: 'kicked';
  room: string;
  reason?: string;
}
/** Addition to protocol v1: a message from the operator API to the room or to chosen participants. */
export interface ServerDataMessage {
  type: 'server';
  room: string;
  data: unknown;
}
export interface ErrorMessage {
  type: 'error';
  id?: RequestId;
  code: ServerErrorCode;
  message: string;
  state?: RoomState;
}

export type ServerMessage =
  | WelcomeMessage
  | JoinedMessage
  | LeftMessage
  | PeerJoinedMessage
  | PeerLeftMessage
  | SignalMessage
  | BroadcastMessage
  | StateMessage
  | AckMessage
  | PongMessage
  | IceServersMessage
  | ReconnectMessage
  | KickedMessage
  | ServerDataMessage
  | ErrorMessage;

/** Parses a text frame; anything that is not an object with a string `type` yields undefined. */
export function parseServerMessage(text: unknown): ServerMessage | undefined {
  if (typeof text !== 'string') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  if (typeof (value as { type?: unknown }).type !== 'string') return undefined;
  return value as ServerMessage;
}
