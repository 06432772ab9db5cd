// Calls a node's operator API (/v1) the way an operator's script would, for the cluster tests.
import type { RunningNode } from './cluster.js';

export const WRITE_KEY = 'write-key-0123456789abcdef';
export const READ_KEY = 'read-key-0123456789abcdef';
/** The ADMIN_API_KEYS value that goes with WRITE_KEY and READ_KEY. */
export const ADMIN_API_KEYS = `write:${WRITE_KEY},read:${READ_KEY}`;

export interface ApiReply<T = any> {
  status: number;
  body: T;
}

export async function callApi<T = any>(
  node: RunningNode | string,
  method: string,
  path: string,
  opts: { key?: string | null; body?: unknown; rawBody?: string } = {},
): Promise<ApiReply<T>> {
  const base = typeof node === 'string' ? node : node.httpUrl;
  const key = opts.key === undefined ? WRITE_KEY : opts.key;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const body = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const res = await fetch(`${base}${path}`, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}
