// The events a SignalingClient emits, by name. Room events are only emitted for rooms the client
// is in; `isReconciled` marks peer changes inferred from a re-join rather than told by the server.
import type { SignalingError } from './errors.js';
import type { IceServer, JsonObject, Peer, PeerLeftReason } from './protocol.js';
import type { RoomSnapshot } from './rooms.js';

export interface SignalingEvents {
  /** A node accepted the connection. */
  welcome: { node: string; protocol: number; heartbeatMs: number };
  /** The connection is usable: rooms are re-joined and held messages are being sent. */
  connected: { node: string; isReconnect: boolean };
  /** The connection ended. */
  disconnected: { code: number; reason: string; willReconnect: boolean };
  /** The next connection attempt is due in `delayMs` (`attempt` is 0 for a server-requested drain). */
  reconnecting: {
    attempt: number;
    delayMs: number;
    reason: 'closed' | 'drain' | 'heartbeat' | 'connect-timeout' | 'connect-failed' | 'rejoin-failed';
  };
  /**
   * The client stopped for good: `close()`, a kick from its last room (`error.code` `kicked`), a
   * policy close (`unauthorized`, `rate-limited`, ...), or reconnect attempts used up. `error` is
   * what pending, held and later requests fail with.
   */
  closed: { code: number; reason: string; error: SignalingError };
  /**
   * A room was joined, or re-joined after a reconnect (`isRejoin`). `resumed` is false when the
   * server gave a new participant id, which the other participants see as a new peer.
   */
  joined: RoomSnapshot & { resumed: boolean; isRejoin: boolean };
  /** A room could not be re-joined after a reconnect (e.g. `forbidden`, `room-full`). */
  'room-lost': { room: string; error: SignalingError };
  left: { room: string };
  /**
   * An operator removed this client from `room` (`signalctl kick`, or the room was closed); the
   * client is out of it and will not join it again by itself. When it was the last room, the node
   * ends the connection and `closed` follows with `error.code` `kicked`.
   */
  kicked: { room: string; reason: string | undefined };
  /** A message from the operator API, to the whole room or to this participant. */
  server: { room: string; data: unknown };
  'peer-joined': { room: string; peer: Peer; isReconciled: boolean };
  'peer-left': { room: string; peer: { id: string }; reason: PeerLeftReason; isReconciled: boolean };
  signal: { room: string; from: string; data: unknown };
  broadcast: { room: string; from: string; data: unknown };
  /** The room's state changed; `from` is absent when the client learnt it from a reply rather than an update event. */
  state: { room: string; version: number; data: JsonObject | null; from: string | undefined };
  /**
   * The room's ICE servers were renewed (before their credentials expired, or by a re-join): give
   * them to the room's peer connections with `pc.setConfiguration({ ...pc.getConfiguration(), iceServers })`.
   */
  'ice-servers': { room: string; iceServers: IceServer[] };
  /** An `error` frame that answers no pending request. */
  error: SignalingError;
}
