// Dispatches /v1 requests to the operator routes: finds the route, checks the caller's access,
// validates path, query and body with the route's zod schemas, and turns failures into JSON errors.
// The same route table feeds the OpenAPI document (openapi.ts).
import type { Logger } from 'pino';
import { z } from 'zod';
import { isProtocolError } from '../protocol/errors.js';
import { jsonProblem, stringProblem } from '../protocol/storable.js';
import type { ApiHandler, ApiRequest, ApiResponse } from '../transport/http-routes.js';
import type { Access, AdminAuth } from './admin-auth.js';
import type { ErrorBody } from './schemas.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

export interface RouteDef<P, Q, B> {
  method: Method;
  /** OpenAPI style: `/v1/rooms/{room}`. */
  path: string;
  /** `public` needs no credentials. */
  access: Access | 'public';
  summary: string;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** The success status and its body schema. */
  status: number;
  response: z.ZodType;
  /** Error statuses this route may answer besides the common ones. */
  errors?: number[];
  handle(input: RouteInput<P, Q, B>): Promise<ApiResponse>;
}

/** A route with its types erased, as the table holds it. */
export type Route = RouteDef<any, any, any>;

export const defineRoute = <P = undefined, Q = undefined, B = undefined>(r: RouteDef<P, Q, B>): Route => r;

export const json = (status: number, body: unknown): ApiResponse => ({ status, body });
export const fail = (status: number, error: z.infer<typeof ErrorBody>['error'], message: string, extra?: object): ApiResponse =>
  json(status, { error, message, ...extra });

interface CompiledRoute {
  route: Route;
  pattern: RegExp;
  names: string[];
}

export class ApiRouter implements ApiHandler {
  private readonly compiled: CompiledRoute[];

  constructor(
    readonly routes: Route[],
    private readonly auth: AdminAuth,
    private readonly log: Logger,
  ) {
    this.compiled = routes.map((route) => {
      const names: string[] = [];
      const source = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_, name: string) => {
        names.push(name);
        return '([^/]+)';
      });
      return { route, pattern: new RegExp(`^${source}/?$`), names };
    });
  }

  async handle(req: ApiRequest): Promise<ApiResponse> {
    if (!this.auth.isEnabled) {
      return fail(
        503,
        'api-disabled',
        'the operator API is off on this node: set ADMIN_API_KEYS (or ADMIN_API_JWT=on with a token key)',
      );
    }
    const matches = this.compiled
      .map((c) => ({ c, m: c.pattern.exec(req.path) }))
      .filter((x): x is { c: CompiledRoute; m: RegExpExecArray } => x.m !== null);
    if (matches.length === 0) return fail(404, 'not-found', `no route ${req.path}`);
    const match = matches.find((x) => x.c.route.method === req.method);
    if (!match) {
      const allowed = matches.map((x) => x.c.route.method).join(', ');
      return {
        ...fail(405, 'method-not-allowed', `${req.method} is not allowed here; use ${allowed}`),
        headers: { allow: allowed },
      };
    }
    const { route, names } = match.c;

    if (route.access !== 'public') {
      const who = await this.auth.authenticate(req.headers);
      if (!who.ok) return fail(401, 'unauthorized', who.reason);
      if (route.access === 'write' && who.access !== 'write') return fail(403, 'forbidden', 'this key or token may only read');
      if (route.access === 'write') this.log.info({ who: who.who, method: req.method, path: req.path }, 'operator action');
    }

    // Whatever a route does with them, paths, queries and bodies hold only what Postgres could
    // store: a NUL in a room name is the caller's mistake, not the database's outage.
    const rawParams: Record<string, string> = {};
    for (const [i, name] of names.entries()) {
      const value = decodeSegment(match.m[i + 1]!);
      if (value === null) return fail(400, 'bad-request', `path: ${name}: not percent-encoded UTF-8`);
      const problem = stringProblem(value);
      if (problem) return fail(400, 'bad-request', `path: ${name}: ${problem}`);
      rawParams[name] = value;
    }
    const params = parse(route.params, rawParams, 'path');
    if (!params.ok) return params.error;
    for (const [name, value] of req.query) {
      const problem = stringProblem(name) ?? stringProblem(value);
      if (problem) return fail(400, 'bad-request', `query: ${name.slice(0, 32)}: ${problem}`);
    }
    const query = parse(route.query, Object.fromEntries(req.query), 'query');
    if (!query.ok) return query.error;
    let rawBody: unknown = undefined;
    if (route.body) {
      if (req.body.trim() === '') rawBody = {};
      else {
        try {
          rawBody = JSON.parse(req.body);
        } catch {
          return fail(400, 'bad-request', 'the body is not valid JSON');
        }
        const problem = jsonProblem(rawBody);
        if (problem) return fail(400, 'bad-request', `body: ${problem}`);
      }
    }
    const body = parse(route.body, rawBody, 'body');
    if (!body.ok) return body.error;

    try {
      return await route.handle({ params: params.value, query: query.value, body: body.value });
    } catch (err) {
      if (isProtocolError(err) && err.code === 'unavailable') return fail(503, 'unavailable', err.message);
      this.log.error({ err, method: req.method, path: route.path }, 'operator API request failed');
      return fail(500, 'internal', 'internal error');
    }
  }
}

function parse(
  schema: z.ZodType | undefined,
  value: unknown,
  where: string,
): { ok: true; value: any } | { ok: false; error: ApiResponse } {
  if (!schema) return { ok: true, value: undefined };
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  const field = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return { ok: false, error: fail(400, 'bad-request', `${where}: ${field}${issue?.message ?? 'invalid'}`) };
}

/** The segment's text, or null when its percent-encoding is not UTF-8. */
function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}
