// The operator API's pieces without a node: key parsing and checking, admin tokens, and the
// OpenAPI document against the route table it is built from.
import { SignJWT } from 'jose';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AdminAuth, parseApiKeys } from '../../src/api/admin-auth.js';
import { buildOpenApi } from '../../src/api/openapi.js';
import { operatorRoutes } from '../../src/api/operator-routes.js';
import { ApiRouter } from '../../src/api/router.js';
import { createPayloadVerifier } from '../../src/auth/token-verifier.js';

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
const bearer = (value: string) => ({ authorization: `Bearer ${value}` });
const adminToken = (grants: string[], exp = '5m') =>
  new SignJWT({ sub: 'ops', grants })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));

describe('ADMIN_API_KEYS', () => {
  it('reads read: and write: keys, a bare key being a write key', () => {
    expect(parseApiKeys('read:aaaaaaaaaaaaaaaa, write:bbbbbbbbbbbbbbbb,cccccccccccccccc')).toEqual([
      { access: 'read', key: 'aaaaaaaaaaaaaaaa' },
      { access: 'write', key: 'bbbbbbbbbbbbbbbb' },
      { access: 'write', key: 'cccccccccccccccc' },
    ]);
    expect(parseApiKeys(undefined)).toEqual([]);
    expect(() => parseApiKeys('read:short')).toThrow(/16 characters/);
  });

  it('grants each key its access and refuses unknown, missing and prefix-only keys', async () => {
    const auth = new AdminAuth(parseApiKeys('read:aaaaaaaaaaaaaaaa,write:bbbbbbbbbbbbbbbb'), null);
    expect(await auth.authenticate(bearer('aaaaaaaaaaaaaaaa'))).toMatchObject({ ok: true, access: 'read' });
    expect(await auth.authenticate({ 'x-api-key': 'bbbbbbbbbbbbbbbb' })).toMatchObject({ ok: true, access: 'write' });
    expect(await auth.authenticate(bearer('aaaaaaaaaaaaaaa'))).toMatchObject({ ok: false });
    expect(await auth.authenticate(bearer('aaaaaaaaaaaaaaaaa'))).toMatchObject({ ok: false });
    expect(await auth.authenticate({})).toMatchObject({ ok: false });
  });

  it('with no keys and no admin tokens the API is off', () => {
    expect(new AdminAuth([], null).isEnabled).toBe(false);
  });
});

describe('admin tokens', () => {
  const auth = new AdminAuth([], createPayloadVerifier({ secret: SECRET }));

  it('admin:read reads, admin:write writes, a join token is refused', async () => {
    expect(await auth.authenticate(bearer(await adminToken(['admin:read'])))).toMatchObject({
      ok: true,
      access: 'read',
      who: 'token:ops',
    });
    expect(await auth.authenticate(bearer(await adminToken(['admin:write'])))).toMatchObject({ ok: true, access: 'write' });
    expect(await auth.authenticate(bearer(await adminToken(['signal'])))).toEqual({
      ok: false,
      reason: 'the token carries no admin grant',
    });
  });

  it('refuses an expired or badly signed token', async () => {
    const expired = await new SignJWT({ sub: 'ops', grants: ['admin:write'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(SECRET));
    expect(await auth.authenticate(bearer(expired))).toEqual({ ok: false, reason: 'token expired' });
    const forged = await new SignJWT({ sub: 'ops', grants: ['admin:write'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(`${SECRET}x`));
    expect(await auth.authenticate(bearer(forged))).toEqual({ ok: false, reason: 'token signature invalid' });
  });
});

describe('the OpenAPI document', () => {
  const unused = () => {
    throw new Error('not called');
  };
  const routes = operatorRoutes({
    nodeId: 'n',
    reader: unused as never,
    admin: unused as never,
    commands: unused as never,
    drainSelf: unused,
    log: pino({ level: 'silent' }),
    openApi: unused,
  });
  const doc = buildOpenApi(routes, '1') as { paths: Record<string, Record<string, { 'x-access': string }>> };

  it('has every route of the router, and nothing else', () => {
    const router = new ApiRouter(routes, new AdminAuth([], null), pino({ level: 'silent' }));
    const routed = router.routes.map((r) => `${r.method} ${r.path}`).sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(routed);
  });

  it('names every path parameter and the access each operation needs', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const op of Object.values(ops) as { parameters: { name: string; in: string }[]; 'x-access': string }[]) {
        expect(op.parameters.filter((p) => p.in === 'path').map((p) => p.name)).toEqual(names);
        expect(['public', 'read', 'write']).toContain(op['x-access']);
      }
    }
  });
});
