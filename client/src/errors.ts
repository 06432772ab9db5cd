// The one error type the client rejects with: a protocol code from the server, or one of the
// client's own codes for failures that never reached a reply.
import type { RoomState, ServerErrorCode } from './protocol.js';

/**
 * Codes the client produces itself:
 * - `timeout`: no reply within `requestTimeoutMs` of the frame being sent;
 * - `disconnected`: the connection ended after the frame was sent and before its reply, so it is
 *   unknown whether the server acted on it (it is not sent again);
 * - `connect-failed`: `connect()` could not reach a node within its attempts, or a node refused the
 *   connection before its `welcome` (`failure` says how);
 * - `closed`: `close()` was called, or reconnecting gave up;
 * - `kicked`: an operator removed this client from its last room, which ended the connection;
 * - `queue-full`: more than `maxQueuedMessages` were waiting for a connection;
 * - `room-lost`: the room could not be re-joined after a reconnect.
 */
export type ClientErrorCode = 'timeout' | 'disconnected' | 'connect-failed' | 'closed' | 'kicked' | 'queue-full' | 'room-lost';
export type SignalingErrorCode = ServerErrorCode | ClientErrorCode;

/** Why a connection attempt ended before the node's `welcome`, as far as the WebSocket implementation tells. */
export interface ConnectFailure {
  /** One line for people: "the upgrade was answered with HTTP 404", "connect ECONNREFUSED 10.0.0.1:8080", … */
  message: string;
  /** The socket's close code (1006 when there was no close frame). */
  closeCode: number;
  /** The HTTP status a refused upgrade was answered with. Node's `ws` reports it; browsers never do. */
  status?: number;
  /** The code of the node's `error` frame when it refused a browser inside the WebSocket (`forbidden-origin`, `rate-limited`). */
  code?: ServerErrorCode;
}

export class SignalingError extends Error {
  override readonly name = 'SignalingError';
  constructor(
    readonly code: SignalingErrorCode,
    message: string = code,
    /** Present on `version-conflict`: the room's current state. */
    readonly state?: RoomState,
    /** Present on `connect-failed`: how the last attempt failed. */
    readonly failure?: ConnectFailure,
  ) {
    super(message);
  }
}

export const isSignalingError = (e: unknown): e is SignalingError => e instanceof SignalingError;
