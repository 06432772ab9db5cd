// The part of the WebSocket API the client uses, satisfied by the browser's WebSocket and by the
// `ws` package's, so that Node (which has no global WebSocket before v22) can pass its own.

/* eslint-disable @typescript-eslint/no-explicit-any -- event shapes differ between implementations */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export function defaultWebSocket(): WebSocketConstructor | undefined {
  const ctor = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof ctor === 'function' ? (ctor as WebSocketConstructor) : undefined;
}

/**
 * What an error event says about a failed connection. `ws` gives a message, which names the HTTP
 * status of a refused upgrade; browsers give nothing (they hide why on purpose).
 */
export function describeSocketError(event: unknown): { message: string; status?: number } | undefined {
  const e = event as { message?: unknown; error?: { message?: unknown } } | null | undefined;
  const message = [e?.message, e?.error?.message].find((m): m is string => typeof m === 'string' && m !== '');
  if (message === undefined) return undefined;
  const status = /Unexpected server response: (\d{3})/.exec(message)?.[1];
  if (status === undefined) return { message };
  return { message: `the upgrade was answered with HTTP ${status}`, status: Number(status) };
}

/** Adds `?token=` to a URL without disturbing its other query parameters. */
export function withToken(url: string, token: string | undefined): string {
  if (!token) return url;
  const separator = url.includes('?') ? '&' : '?';
  return `${url}${separator}token=${encodeURIComponent(token)}`;
}

/** Detaches every handler and closes, so a socket given up on cannot call back into the client. */
export function discard(socket: WebSocketLike, code = 1000, reason = ''): void {
  socket.onopen = socket.onmessage = socket.onclose = null;
  // A no-op rather than null: `ws` emits 'error' when a connecting socket is closed, and an
  // EventEmitter 'error' without a listener would throw.
  socket.onerror = () => {};
  try {
    socket.close(code, reason);
  } catch {
    // Already closed, or still connecting in an implementation that refuses; nothing to undo.
  }
}
