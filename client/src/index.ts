// Public surface of the signaling client SDK.
export { SignalingClient } from './client.js';
export type { ConnectionState, JoinedRoom, SignalingClientOptions, ReconnectReason } from './client.js';
export type { SignalingEvents } from './events.js';
export { SignalingError, isSignalingError } from './errors.js';
export type { ClientErrorCode, ConnectFailure, SignalingErrorCode } from './errors.js';
export type { JoinOptions, RoomSnapshot } from './rooms.js';
export type { BackoffOptions } from './backoff.js';
export type { WebSocketConstructor, WebSocketLike } from './socket.js';
export type { IceServer, JsonObject, Peer, PeerLeftReason, RoomState, ServerErrorCode } from './protocol.js';
export { PROTOCOL_VERSION } from './protocol.js';
