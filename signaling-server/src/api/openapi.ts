// The OpenAPI 3.1 document of the operator API, built from the route table and its zod schemas
// (JSON Schema 2020-12, which OpenAPI 3.1 uses as is), so the document is the code.
import { z } from 'zod';
import type { Route } from './router.js';
import { ErrorBody } from './schemas.js';

const COMMON_ERRORS: Record<number, string> = {
  400: 'invalid path, query or body',
  401: 'no key or token, or an unknown one',
  403: 'a read-only key or token on a write',
  413: 'a request body over MAX_MESSAGE_BYTES (`too-large`), refused before the route is looked at',
  503: 'the API is off on this node (`api-disabled`), or the database or bus is unreachable (`unavailable`)',
};
const ROUTE_ERRORS: Record<number, string> = { 404: 'no such room, participant or node', 409: 'the state is at another version' };

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function parametersOf(schema: z.ZodType | undefined, where: 'path' | 'query') {
  if (!schema) return [];
  const json = schemaOf(schema, 'input') as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    schema: s,
    ...(typeof s.description === 'string' ? { description: s.description } : {}),
  }));
}

export function buildOpenApi(routes: Route[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const error = { content: { 'application/json': { schema: schemaOf(ErrorBody, 'output') } } };
  for (const r of routes) {
    const responses: Record<string, unknown> = {
      [r.status]: { description: 'success', content: { 'application/json': { schema: schemaOf(r.response, 'output') } } },
    };
    const errors = r.access === 'public' ? { 413: COMMON_ERRORS[413]!, 503: COMMON_ERRORS[503]! } : { ...COMMON_ERRORS };
    for (const status of r.errors ?? []) (errors as Record<number, string>)[status] = ROUTE_ERRORS[status] ?? 'error';
    for (const [status, description] of Object.entries(errors)) responses[status] = { description, ...error };
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      'x-access': r.access,
      security: r.access === 'public' ? [] : [{ bearer: [] }],
      parameters: [...parametersOf(r.params, 'path'), ...parametersOf(r.query, 'query')],
      ...(r.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(r.body, 'input') } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Signaling cluster operator API',
      version,
      description:
        'Served by every node under /v1/. Reads are cluster-wide (Postgres); actions reach the node concerned over the bus.',
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An ADMIN_API_KEYS key, or a JWT with grants ["admin:read"] or ["admin:write"] (ADMIN_API_JWT=on)',
        },
      },
    },
    paths,
  };
}
