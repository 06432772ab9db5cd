// The plain HTTP side of a node: /healthz, /readyz, /metrics, the operator API under /v1/ and the
// static files. It reads a request off uWS (whose request object is valid only until the handler
// returns), hands a plain value to whoever answers it, and writes the answer back unless the client
// went away meanwhile. The WebSocket side lives in server.ts.
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { StaticFiles } from './static-files.js';

/** An HTTP request as the API sees it: no uWS objects, the body read in full. */
export interface ApiRequest {
  method: string;
  /** The path without the query string, e.g. `/v1/rooms`. */
  path: string;
  query: URLSearchParams;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: string;
}

export interface ApiResponse {
  status: number;
  /** Serialised as JSON. */
  body: unknown;
  headers?: Record<string, string>;
}

export interface ApiHandler {
  handle(req: ApiRequest): Promise<ApiResponse>;
}

export interface HttpRoutesOptions {
  metrics: Metrics;
  log: Logger;
  staticFiles?: StaticFiles;
  /** Resolves true when this node should receive traffic. */
  isReady: () => Promise<boolean>;
  /** Answers /v1/*; without it /v1/ answers 404. */
  api?: ApiHandler;
  /** Request bodies past this many bytes are refused with 413. */
  maxBodyBytes: number;
}

interface Answer {
  status: string;
  type: string;
  body: string;
  headers?: Record<string, string>;
}

/** How long /readyz waits for its checks before answering not ready (well within a 1 s probe). */
const READY_DEADLINE_MS = 800;

/** Headers the API reads; uWS offers no way to list them all cheaply, and it needs no others. */
const API_HEADERS = ['authorization', 'content-type', 'x-api-key'];

export function registerHttpRoutes(app: TemplatedApp, opts: HttpRoutesOptions): void {
  app.get('/healthz', (res) => {
    res.cork(() => res.writeHeader('content-type', 'text/plain').end('ok'));
  });
  app.get('/readyz', (res) => {
    answerLater(res, opts.log, async () => {
      // A dependency that hangs (a black-holed Postgres) makes the node unready, not the probe slow:
      // load balancers and kubelets give up after a second or so and would learn nothing.
      const ready = await withDeadline(opts.isReady(), READY_DEADLINE_MS, false).catch(() => false);
      return { status: ready ? '200 OK' : '503 Service Unavailable', type: 'text/plain', body: ready ? 'ready' : 'not ready' };
    });
  });
  app.get('/metrics', (res) => {
    answerLater(res, opts.log, async () => ({
      status: '200 OK',
      type: opts.metrics.registry.contentType,
      body: await opts.metrics.registry.metrics(),
    }));
  });
  const api = (res: HttpResponse, req: HttpRequest) => serveApi(res, req, opts);
  app.any('/v1', api);
  app.any('/v1/*', api);
  app.get('/*', (res, req) => {
    // uws-pack's older router (the build loaded on Node 22) ranks this GET wildcard above
    // `any('/v1/*')`, so API GETs can land here.
    const url = req.getUrl();
    if (url === '/v1' || url.startsWith('/v1/')) return api(res, req);
    const file = opts.staticFiles?.lookup(url);
    res.cork(() => {
      if (!file) res.writeStatus('404 Not Found').end('not found');
      else res.writeHeader('content-type', file.type).writeHeader('cache-control', 'no-cache').end(file.body);
    });
  });
}

function serveApi(res: HttpResponse, req: HttpRequest, opts: HttpRoutesOptions): void {
  const method = req.getMethod().toUpperCase();
  const path = req.getUrl();
  const query = new URLSearchParams(req.getQuery() ?? '');
  const headers: Record<string, string> = {};
  for (const name of API_HEADERS) {
    const value = req.getHeader(name);
    if (value !== '') headers[name] = value;
  }
  const state = { isAborted: false };
  res.onAborted(() => (state.isAborted = true));
  readBody(res, opts.maxBodyBytes).then(
    (body) => {
      // The same JSON error shape as the API's own (api/schemas.ts ErrorBody).
      const work =
        body === null
          ? Promise.resolve({
              status: 413,
              body: { error: 'too-large', message: `the request body is over ${opts.maxBodyBytes} bytes` },
            })
          : opts.api
            ? opts.api.handle({ method, path, query, headers, body })
            : Promise.resolve({ status: 404, body: { error: 'not-found', message: 'no API on this node' } });
      reply(res, state, opts.log, () => work.then(toAnswer));
    },
    () => undefined,
  );
}

/** `work`'s value, or `fallback` once `ms` have passed without one. */
function withDeadline<T>(work: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

function toAnswer(r: ApiResponse): Answer {
  return { status: statusLine(r.status), type: 'application/json', body: JSON.stringify(r.body), headers: r.headers };
}

/** Collects the request body; null when it grows past `max` bytes. */
function readBody(res: HttpResponse, max: number): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let isTooLarge = false;
    res.onData((chunk, isLast) => {
      if (!isTooLarge) {
        size += chunk.byteLength;
        // uWS reuses the chunk's memory after this callback: copy it.
        if (size > max) isTooLarge = true;
        else chunks.push(Buffer.from(chunk.slice(0)));
      }
      if (isLast) resolve(isTooLarge ? null : Buffer.concat(chunks).toString('utf8'));
    });
  });
}

function answerLater(res: HttpResponse, log: Logger, produce: () => Promise<Answer>): void {
  const state = { isAborted: false };
  res.onAborted(() => (state.isAborted = true));
  reply(res, state, log, produce);
}

function reply(res: HttpResponse, state: { isAborted: boolean }, log: Logger, produce: () => Promise<Answer>): void {
  produce().then(
    ({ status, type, body, headers }) => {
      if (state.isAborted) return;
      res.cork(() => {
        res.writeStatus(status).writeHeader('content-type', type);
        for (const [name, value] of Object.entries(headers ?? {})) res.writeHeader(name, value);
        res.end(body);
      });
    },
    (err) => {
      log.error({ err }, 'http handler failed');
      if (!state.isAborted) res.cork(() => res.writeStatus('500 Internal Server Error').end('internal error'));
    },
  );
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? ''}`.trim();
}
