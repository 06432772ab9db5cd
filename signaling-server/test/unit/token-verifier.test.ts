import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTokenVerifier,
  grantAllows,
  roomAllowed,
  type TokenClaims,
  type TokenVerifier,
} from '../../src/auth/token-verifier.js';
import { ProtocolError } from '../../src/protocol/errors.js';

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
const now = () => Math.floor(Date.now() / 1000);

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function hs256(payload: JWTPayload, secret = SECRET, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', ...header }).sign(new TextEncoder().encode(secret));
}

function validPayload(extra: JWTPayload = {}): JWTPayload {
  return { sub: 'alice', room: 'lobby', exp: now() + 3600, ...extra };
}

function without(payload: JWTPayload, key: string): JWTPayload {
  const copy = { ...payload };
  delete copy[key];
  return copy;
}

/** Asserts the rejection is `code` with a reason matching `reason`, and that it never echoes the token. */
async function expectRejected(
  verifier: TokenVerifier,
  token: string,
  reason: RegExp,
  code: 'unauthorized' | 'unavailable' = 'unauthorized',
): Promise<void> {
  const error = await verifier.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  const pe = error as ProtocolError;
  expect(pe.code).toBe(code);
  expect(pe.message).toMatch(reason);
  for (const part of token.split('.').filter((p) => p.length > 8)) {
    expect(pe.message).not.toContain(part);
  }
}

describe('createTokenVerifier configuration', () => {
  it('returns null (anonymous mode) when no key is configured, including empty strings', () => {
    expect(createTokenVerifier({})).toBeNull();
    expect(createTokenVerifier({ secret: '', publicKeyPem: ' ', jwksUrl: '' })).toBeNull();
  });

  it('refuses more than one key source, since that would widen the accepted algorithms', () => {
    expect(createTokenVerifier({ secret: SECRET, publicKeyPem: '' })).not.toBeNull();
    expect(() => createTokenVerifier({ secret: SECRET, publicKeyPem: 'x' })).toThrow(/exactly one/);
    expect(() => createTokenVerifier({ publicKeyPem: 'x', jwksUrl: 'http://127.0.0.1/' })).toThrow(/exactly one/);
  });

  it('refuses a public key it cannot use: not PEM, or an EC curve other than P-256', async () => {
    expect(() => createTokenVerifier({ publicKeyPem: 'not a pem' })).toThrow(/PEM/);
    const es384 = await exportSPKI((await generateKeyPair('ES384')).publicKey);
    expect(() => createTokenVerifier({ publicKeyPem: es384 })).toThrow(/P-256/);
    expect(() => createTokenVerifier({ jwksUrl: 'not a url' })).toThrow(/URL/);
  });
});

describe('HS256 tokens', () => {
  const verifier = createTokenVerifier({ secret: SECRET, clockToleranceSec: 0 }) as TokenVerifier;

  it('accepts a valid token and returns its claims, with all grants when grants is absent', async () => {
    const exp = now() + 600;
    const claims = await verifier.verify(await hs256({ sub: 'alice', room: 'lobby', name: 'Alice', exp }));
    expect(claims.sub).toBe('alice');
    expect(claims.room).toBe('lobby');
    expect(claims.name).toBe('Alice');
    expect(claims.exp).toBe(exp);
    expect([...claims.grants].sort()).toEqual(['broadcast', 'signal', 'state']);
  });

  it('keeps only the listed grants, and an empty list grants nothing', async () => {
    const some = await verifier.verify(await hs256(validPayload({ grants: ['signal'] })));
    expect([...some.grants]).toEqual(['signal']);
    expect(grantAllows(some, 'signal')).toBe(true);
    expect(grantAllows(some, 'broadcast')).toBe(false);
    expect(grantAllows(some, 'state')).toBe(false);
    const none = await verifier.verify(await hs256(validPayload({ grants: [] })));
    expect(none.grants.size).toBe(0);
  });

  it('accepts a room wildcard and a 64-character name', async () => {
    const claims = await verifier.verify(await hs256(validPayload({ room: '*', name: 'n'.repeat(64) })));
    expect(claims.room).toBe('*');
    expect(claims.name).toHaveLength(64);
  });

  it('rejects alg "none" crafted by hand, with or without a signature part', async () => {
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(validPayload())}.`;
    await expectRejected(verifier, unsigned, /algorithm not allowed/);
    const withJunk = `${unsigned}${Buffer.from('sig').toString('base64url')}`;
    await expectRejected(verifier, withJunk, /algorithm not allowed/);
  });

  it('rejects a token signed with another secret', async () => {
    await expectRejected(verifier, await hs256(validPayload(), 'some-other-secret-of-enough-length-0000'), /signature invalid/);
  });

  it('rejects a token whose payload was changed after signing', async () => {
    const token = await hs256(validPayload({ room: 'lobby' }));
    const [header, , signature] = token.split('.');
    const forged = `${header}.${b64url(validPayload({ room: '*' }))}.${signature}`;
    await expectRejected(verifier, forged, /signature invalid/);
  });

  it('rejects an expired token', async () => {
    await expectRejected(verifier, await hs256(validPayload({ exp: now() - 60 })), /expired/);
  });

  it('honours the clock tolerance for exp', async () => {
    const lenient = createTokenVerifier({ secret: SECRET, clockToleranceSec: 120 }) as TokenVerifier;
    const token = await hs256(validPayload({ exp: now() - 60 }));
    await expect(lenient.verify(token)).resolves.toMatchObject({ sub: 'alice' });
  });

  it('rejects a token that is not yet valid (nbf in the future)', async () => {
    await expectRejected(verifier, await hs256(validPayload({ nbf: now() + 3600 })), /not yet valid/);
  });

  it('rejects a token without sub, with an empty sub, or without exp', async () => {
    await expectRejected(verifier, await hs256(without(validPayload(), 'sub')), /"sub"/);
    await expectRejected(verifier, await hs256(validPayload({ sub: '' })), /"sub"/);
    await expectRejected(verifier, await hs256(without(validPayload(), 'exp')), /"exp"/);
  });

  it('rejects a missing or invalid room claim', async () => {
    await expectRejected(verifier, await hs256(without(validPayload(), 'room')), /"room"/);
    await expectRejected(verifier, await hs256(validPayload({ room: 'has space' })), /"room"/);
    await expectRejected(verifier, await hs256(validPayload({ room: 'r'.repeat(129) })), /"room"/);
    await expectRejected(verifier, await hs256(validPayload({ room: '' })), /"room"/);
    await expectRejected(verifier, await hs256(validPayload({ room: 42 })), /"room"/);
  });

  it('rejects malformed grants', async () => {
    await expectRejected(verifier, await hs256(validPayload({ grants: 'signal' })), /"grants"/);
    await expectRejected(verifier, await hs256(validPayload({ grants: ['signal', 'admin'] })), /"grants/);
    await expectRejected(verifier, await hs256(validPayload({ grants: [1] })), /"grants/);
  });

  it('rejects a name longer than 64 characters or not a string', async () => {
    await expectRejected(verifier, await hs256(validPayload({ name: 'n'.repeat(65) })), /"name"/);
    await expectRejected(verifier, await hs256(validPayload({ name: null })), /"name"/);
  });

  it('rejects garbage, empty and oversized tokens as malformed without echoing them', async () => {
    await expectRejected(verifier, 'not-a-jwt-at-all-but-long-enough', /malformed/);
    await expectRejected(verifier, 'aGVsbG8gd29ybGQ.aGVsbG8gd29ybGQ.aGVsbG8gd29ybGQ', /malformed/);
    await expectRejected(verifier, '', /missing/);
    await expectRejected(verifier, await hs256(validPayload({ pad: 'x'.repeat(9000) })), /too long/);
  });
});

describe('public-key tokens (RS256 / ES256 from an SPKI PEM)', () => {
  let rsa: { publicKey: CryptoKey; privateKey: CryptoKey; pem: string };
  let ec: { publicKey: CryptoKey; privateKey: CryptoKey; pem: string };

  beforeAll(async () => {
    const r = await generateKeyPair('RS256');
    rsa = { ...r, pem: await exportSPKI(r.publicKey) };
    const e = await generateKeyPair('ES256');
    ec = { ...e, pem: await exportSPKI(e.publicKey) };
  });

  const sign = (alg: 'RS256' | 'ES256', key: CryptoKey, payload = validPayload()) =>
    new SignJWT(payload).setProtectedHeader({ alg }).sign(key);

  it('accepts RS256 tokens signed by the configured RSA key', async () => {
    const verifier = createTokenVerifier({ publicKeyPem: rsa.pem }) as TokenVerifier;
    await expect(verifier.verify(await sign('RS256', rsa.privateKey))).resolves.toMatchObject({ sub: 'alice', room: 'lobby' });
  });

  it('accepts ES256 tokens signed by the configured P-256 key', async () => {
    const verifier = createTokenVerifier({ publicKeyPem: ec.pem }) as TokenVerifier;
    await expect(verifier.verify(await sign('ES256', ec.privateKey))).resolves.toMatchObject({ sub: 'alice', room: 'lobby' });
  });

  it('rejects an HS256 token whose HMAC key is the public key PEM (key confusion)', async () => {
    for (const pem of [rsa.pem, ec.pem]) {
      const verifier = createTokenVerifier({ publicKeyPem: pem }) as TokenVerifier;
      await expectRejected(verifier, await hs256(validPayload(), pem), /algorithm not allowed/);
    }
  });

  it('rejects a token of the other asymmetric algorithm and alg none', async () => {
    const rsaVerifier = createTokenVerifier({ publicKeyPem: rsa.pem }) as TokenVerifier;
    await expectRejected(rsaVerifier, await sign('ES256', ec.privateKey), /algorithm not allowed/);
    const ecVerifier = createTokenVerifier({ publicKeyPem: ec.pem }) as TokenVerifier;
    await expectRejected(ecVerifier, await sign('RS256', rsa.privateKey), /algorithm not allowed/);
    await expectRejected(ecVerifier, `${b64url({ alg: 'none' })}.${b64url(validPayload())}.`, /algorithm not allowed/);
  });

  it('rejects a token signed by another key of the right type', async () => {
    const other = await generateKeyPair('ES256');
    const verifier = createTokenVerifier({ publicKeyPem: ec.pem }) as TokenVerifier;
    await expectRejected(verifier, await sign('ES256', other.privateKey), /signature invalid/);
  });

  it('applies the claim rules to asymmetric tokens too', async () => {
    const verifier = createTokenVerifier({ publicKeyPem: rsa.pem, clockToleranceSec: 0 }) as TokenVerifier;
    await expectRejected(verifier, await sign('RS256', rsa.privateKey, validPayload({ exp: now() - 60 })), /expired/);
    await expectRejected(verifier, await sign('RS256', rsa.privateKey, without(validPayload(), 'room')), /"room"/);
  });
});

describe('JWKS tokens', () => {
  let server: Server;
  let base: string;
  let requests = 0;
  let keys: { privateKey: CryptoKey; jwks: string };

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    keys = { privateKey, jwks: JSON.stringify({ keys: [jwk] }) };
    server = createServer((req, res) => {
      if (req.url === '/jwks') {
        requests++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(keys.jwks);
      } else if (req.url === '/broken') {
        res.writeHead(500).end();
      }
      // '/hang' never answers, to exercise the fetch timeout.
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const sign = (kid: string, payload = validPayload()) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(keys.privateKey);

  it('verifies with a key from the endpoint and serves the second verification from its cache', async () => {
    const verifier = createTokenVerifier({ jwksUrl: `${base}/jwks` }) as TokenVerifier;
    const before = requests;
    await expect(verifier.verify(await sign('k1'))).resolves.toMatchObject({ sub: 'alice' });
    expect(requests).toBe(before + 1);
    await expect(verifier.verify(await sign('k1', validPayload({ sub: 'bob' })))).resolves.toMatchObject({ sub: 'bob' });
    expect(requests).toBe(before + 1);
  });

  it('rejects a kid the set does not hold, without refetching during the cooldown', async () => {
    const verifier = createTokenVerifier({ jwksUrl: `${base}/jwks` }) as TokenVerifier;
    await verifier.verify(await sign('k1'));
    const before = requests;
    await expectRejected(verifier, await sign('k2'), /no key matches/);
    expect(requests).toBe(before);
  });

  it('rejects HS256 and alg none before fetching any key', async () => {
    const verifier = createTokenVerifier({ jwksUrl: `${base}/jwks` }) as TokenVerifier;
    const before = requests;
    await expectRejected(verifier, await hs256(validPayload(), keys.jwks, { kid: 'k1' }), /algorithm not allowed/);
    await expectRejected(verifier, `${b64url({ alg: 'none', kid: 'k1' })}.${b64url(validPayload())}.`, /algorithm not allowed/);
    expect(requests).toBe(before);
  });

  it('answers unavailable, not unauthorized, when the endpoint fails or times out', async () => {
    const broken = createTokenVerifier({ jwksUrl: `${base}/broken` }) as TokenVerifier;
    await expectRejected(broken, await sign('k1'), /cannot be fetched/, 'unavailable');
    const hanging = createTokenVerifier({ jwksUrl: `${base}/hang`, jwksTimeoutMs: 200 }) as TokenVerifier;
    await expectRejected(hanging, await sign('k1'), /cannot be fetched/, 'unavailable');
  });
});

describe('roomAllowed and grantAllows', () => {
  const claims = (room: string, grants: string[]): TokenClaims => ({
    sub: 's',
    room,
    exp: now() + 60,
    grants: new Set(grants) as TokenClaims['grants'],
  });

  it('allows only the named room, or every room for "*"', () => {
    expect(roomAllowed(claims('a', []), 'a')).toBe(true);
    expect(roomAllowed(claims('a', []), 'b')).toBe(false);
    expect(roomAllowed(claims('a', []), 'A')).toBe(false);
    expect(roomAllowed(claims('*', []), 'anything')).toBe(true);
  });

  it('allows every action to anonymous connections and only granted actions otherwise', () => {
    expect(grantAllows(undefined, 'state')).toBe(true);
    expect(grantAllows(claims('a', ['broadcast']), 'broadcast')).toBe(true);
    expect(grantAllows(claims('a', ['broadcast']), 'signal')).toBe(false);
  });
});
