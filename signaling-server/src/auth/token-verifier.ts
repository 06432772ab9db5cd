// Verifies join tokens (shared/protocol.md, "Tokens") and answers "may this identity do that here".
// Exactly one key source is configured; only the algorithms that fit it are accepted, which is what
// stops `alg: none` and the HS256-with-a-public-key confusion before any signature is checked.

import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { z } from 'zod';
import { ProtocolError, isProtocolError } from '../protocol/errors.js';
import { storableString } from '../protocol/storable.js';

export type Grant = 'signal' | 'broadcast' | 'state';

export interface TokenClaims {
  sub: string;
  /** A room name or `"*"` for every room. */
  room: string;
  name?: string;
  grants: ReadonlySet<Grant>;
  exp: number;
}

export interface TokenVerifier {
  /** Resolves with the claims, or rejects with ProtocolError `unauthorized` (`unavailable` when a JWKS endpoint cannot be reached). */
  verify(token: string): Promise<TokenClaims>;
}

export interface TokenVerifierOptions {
  /** HS256 shared secret. */
  secret?: string;
  /** The HS256 secret being rotated out: still accepted, so tokens signed before a rotation keep working. */
  previousSecret?: string;
  /** SPKI PEM of an RSA (RS256) or P-256 (ES256) public key. */
  publicKeyPem?: string;
  /** JWKS endpoint holding RS256/ES256 keys; fetched lazily and cached. */
  jwksUrl?: string;
  /** Allowed clock skew for `exp` and `nbf`; default 5 s. */
  clockToleranceSec?: number;
  /** Timeout of one JWKS fetch; default 5000 ms. */
  jwksTimeoutMs?: number;
}

export const GRANTS = ['signal', 'broadcast', 'state'] as const satisfies readonly Grant[];

/** Same alphabet and length as a `join` room in the protocol. */
const ROOM_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Tokens longer than this are refused before any decoding work. */
const MAX_TOKEN_LENGTH = 8192;

/** The claims this server reads; other registered or private claims are ignored. */
export const tokenPayloadSchema = z.object({
  // The subject and the name are stored with the participant.
  sub: storableString(z.string().min(1).max(256)),
  room: z.union([z.literal('*'), z.string().regex(ROOM_NAME)]),
  name: storableString(z.string().max(64)).optional(),
  grants: z.array(z.enum(GRANTS)).max(GRANTS.length).optional(),
  exp: z.number(),
});

export type TokenPayload = z.infer<typeof tokenPayloadSchema>;

type KeySource = { key: Uint8Array | KeyObject | JWTVerifyGetKey; algorithms: string[] };

/** Returns null when no key source is configured: the server then runs in anonymous mode. */
export function createTokenVerifier(opts: TokenVerifierOptions): TokenVerifier | null {
  const verifyPayload = createPayloadVerifier(opts);
  if (!verifyPayload) return null;
  return {
    async verify(token: string): Promise<TokenClaims> {
      const payload = await verifyPayload(token);
      const parsed = tokenPayloadSchema.safeParse(payload);
      if (!parsed.success) {
        const field = parsed.error.issues[0]?.path.join('.') || 'payload';
        throw unauthorized(`token claim "${field}" missing or invalid`);
      }
      return toClaims(parsed.data);
    },
  };
}

/**
 * Checks a token's signature, algorithm and `exp` against the configured key source and returns
 * its payload unread: join tokens and the operator API's admin tokens read different claims.
 * Null when no key source is configured.
 */
export function createPayloadVerifier(opts: TokenVerifierOptions): ((token: string) => Promise<unknown>) | null {
  const secret = nonEmpty(opts.secret);
  const publicKeyPem = nonEmpty(opts.publicKeyPem);
  const jwksUrl = nonEmpty(opts.jwksUrl);
  const configured = [secret, publicKeyPem, jwksUrl].filter((v) => v !== undefined).length;
  if (configured === 0) return null;
  if (configured > 1) {
    // Accepting several would widen the accepted algorithms to their union; make the operator pick.
    throw new Error('configure exactly one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY, AUTH_JWKS_URL');
  }

  let source: KeySource;
  if (secret !== undefined) {
    source = { key: new TextEncoder().encode(secret), algorithms: ['HS256'] };
  } else if (publicKeyPem !== undefined) {
    source = publicKeySource(publicKeyPem);
  } else {
    source = jwksSource(jwksUrl as string, opts.jwksTimeoutMs ?? 5000);
  }

  const verifyOptions: JWTVerifyOptions = {
    algorithms: source.algorithms,
    clockTolerance: opts.clockToleranceSec ?? 5,
    requiredClaims: ['sub', 'exp'],
  };

  const previous = secret !== undefined ? nonEmpty(opts.previousSecret) : undefined;
  const previousKey = previous === undefined ? undefined : new TextEncoder().encode(previous);

  return async (token: string): Promise<unknown> => {
    if (typeof token !== 'string' || token.length === 0) throw unauthorized('token missing');
    if (token.length > MAX_TOKEN_LENGTH) throw unauthorized('token too long');
    try {
      // The overloads differ by key kind; the union is fine at runtime.
      const { payload } = await jwtVerify(token, source.key as Uint8Array, verifyOptions);
      return payload;
    } catch (e) {
      // Only a bad signature is worth a second try: an expired token is expired under either secret.
      if (previousKey && joseCode(e) === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') {
        try {
          return (await jwtVerify(token, previousKey, verifyOptions)).payload;
        } catch (again) {
          throw toProtocolError(again);
        }
      }
      throw toProtocolError(e);
    }
  };
}

export function roomAllowed(claims: TokenClaims, room: string): boolean {
  return claims.room === '*' || claims.room === room;
}

/** Anonymous connections (no claims, because no verifier is configured) may do everything. */
export function grantAllows(claims: TokenClaims | undefined, action: Grant): boolean {
  return claims === undefined || claims.grants.has(action);
}

function toClaims(p: TokenPayload): TokenClaims {
  const claims: TokenClaims = {
    sub: p.sub,
    room: p.room,
    grants: new Set<Grant>(p.grants ?? GRANTS),
    exp: p.exp,
  };
  if (p.name !== undefined) claims.name = p.name;
  return claims;
}

function publicKeySource(pem: string): KeySource {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error('AUTH_JWT_PUBLIC_KEY is not a PEM public key');
  }
  if (key.asymmetricKeyType === 'rsa') return { key, algorithms: ['RS256'] };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return { key, algorithms: ['ES256'] };
  }
  throw new Error('AUTH_JWT_PUBLIC_KEY must be an RSA (RS256) or P-256 (ES256) public key');
}

function jwksSource(url: string, timeoutMs: number): KeySource {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('AUTH_JWKS_URL is not a URL');
  }
  // createRemoteJWKSet caches the set, refetches at most once per cooldown when an unknown kid
  // shows up, and shares one in-flight request between concurrent verifications.
  const jwks = createRemoteJWKSet(parsed, {
    timeoutDuration: timeoutMs,
    cooldownDuration: 30_000,
    cacheMaxAge: 10 * 60_000,
  });
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (e) {
      throw jwksFailure(e);
    }
  };
  return { key: getKey, algorithms: ['RS256', 'ES256'] };
}

/** A token the set has no key for is the client's problem; an unreachable set is ours. */
function jwksFailure(e: unknown): ProtocolError {
  switch (joseCode(e)) {
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return unauthorized('no key matches the token');
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return unauthorized('token does not name a single key (kid)');
    case 'ERR_JOSE_NOT_SUPPORTED':
    case 'ERR_JWK_INVALID':
      return unauthorized('token key is not usable');
    default:
      return new ProtocolError('unavailable', 'token keys cannot be fetched right now');
  }
}

function toProtocolError(e: unknown): ProtocolError {
  if (isProtocolError(e)) return e;
  switch (joseCode(e)) {
    case 'ERR_JWT_EXPIRED':
      return unauthorized('token expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (e as { claim?: unknown }).claim;
      if (claim === 'nbf') return unauthorized('token not yet valid');
      return unauthorized(`token claim "${String(claim)}" missing or invalid`);
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return unauthorized('token algorithm not allowed');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return unauthorized('token signature invalid');
    default:
      // Malformed compact form, bad base64/JSON, unsupported header, etc. jose's own message is
      // not echoed: it is not part of our contract and may change.
      return unauthorized('token malformed');
  }
}

function joseCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_J') ? code : undefined;
}

function unauthorized(reason: string): ProtocolError {
  return new ProtocolError('unauthorized', reason);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}
