// The one error type the client rejects with: a protocol code from the server, or one of the
// client's own codes for failures that never reached a reply.
import type { RoomState, ServerErrorCode } from './protocol.js';

/**
 * Codes the client produces itself:
 * - `timeout`: no reply within `requestTimeoutMs` of the frame being sent;
 * - `disconnected`: the connection ended after the frame was sent and before its reply, so it is
 *   unknown whether the server acted on it (it is not sent again);
 * - `closed`: `close()` was called, or reconnecting gave up;
 * - `kicked`: an operator removed this client from its last room, which ended the connection;
 * - `queue-full`: more than `maxQueuedMessages` were waiting for a connection;
 * - `room-lost`: the room could not be re-joined after a reconnect.
 */
export type ClientErrorCode = 'timeout' | 'disconnected' | 'closed' | 'kicked' | 'queue-full' | 'room-lost';
export type SignalingErrorCode = ServerErrorCode | ClientErrorCode;

export class SignalingError extends Error {
  override readonly name = 'SignalingError';
  constructor(
    readonly code: SignalingErrorCode,
    message: string = code,
    /** Present on `version-conflict`: the room's current state. */
    readonly state?: RoomState,
  ) {
    super(message);
  }
}

export const isSignalingError = (e: unknown): e is SignalingError => e instanceof SignalingError;
