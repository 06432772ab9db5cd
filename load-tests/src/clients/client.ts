// One interface over both systems under test, so every scenario drives the project and the
// Socket.IO baseline with the same code: connect, join, leave, signal, broadcast.
export interface Delivery {
  kind: 'signal' | 'broadcast';
  room: string;
  from: string;
  data: unknown;
}

export interface SignalingClient {
  /** Joins `room`; resolves with this client's participant id there. */
  join(room: string): Promise<string>;
  leave(room: string): Promise<void>;
  /** Fire and forget: no ack is asked for, as a signaling client would send ICE candidates. */
  signal(room: string, to: string, data: unknown): void;
  broadcast(room: string, data: unknown): void;
  /** Called for every signal or broadcast received. */
  onDelivery: ((d: Delivery) => void) | undefined;
  /** Called with the error code of every unsolicited error, and 'closed' on an unexpected close. */
  onError: ((code: string) => void) | undefined;
  close(): void;
}

export interface ConnectOptions {
  url: string;
  localAddress?: string | undefined;
  timeoutMs: number;
}

export class RequestError extends Error {
  constructor(
    readonly code: string,
    message?: string,
  ) {
    super(message ? `${code}: ${message}` : code);
  }
}
