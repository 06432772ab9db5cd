// Error codes of the wire contract (shared/protocol.md, "Error codes") and the value the domain
// throws to say "answer this request with that code".

export const ERROR_CODES = [
  'bad-request',
  'too-large',
  'unauthorized',
  'forbidden',
  'not-joined',
  'already-joined',
  'room-full',
  'too-many-rooms',
  'peer-not-found',
  'version-conflict',
  'rate-limited',
  // Addition (docs/protocol.md): a browser's upgrade from an origin not in ALLOWED_ORIGINS.
  'forbidden-origin',
  'unavailable',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** A failure the client is told about as an `error` frame; `extra` fields are merged into it. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string = code,
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export const isProtocolError = (e: unknown): e is ProtocolError => e instanceof ProtocolError;
