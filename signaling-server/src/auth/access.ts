// What a participant may do and who it is, whichever said so: its token, the join hook, or nobody
// (anonymous mode). With both a token and a hook, the token fixes the identity and the most the
// participant may do, and the hook's answer can only narrow it.
import { z } from 'zod';
import { ProtocolError } from '../protocol/errors.js';
import { GRANTS, type Grant, type TokenClaims } from './token-verifier.js';

export const ACCESS_SOURCES = ['token', 'hook', 'anonymous'] as const;
export type AccessSource = (typeof ACCESS_SOURCES)[number];

export interface Access {
  /** The token's `sub` or the hook's; null when neither named one. */
  identity: string | null;
  grants: ReadonlySet<Grant>;
  source: AccessSource;
  /** When the join hook wants to be asked again (ms since the epoch); null: never. */
  recheckAt: number | null;
}

/** The part of an Access the store keeps beside the participant's identity. */
export const StoredAccess = z.object({
  source: z.enum(ACCESS_SOURCES),
  grants: z.array(z.enum(GRANTS)),
  recheckAt: z.string().nullable(),
});
export type StoredAccess = z.infer<typeof StoredAccess>;

/** What the join hook's `allow` answer says about rights; the rest (name, meta) is the join's. */
export interface HookGrant {
  sub?: string;
  grants?: Grant[];
  recheckAfterSec?: number;
}

export const anonymousAccess = (): Access => ({ identity: null, grants: new Set(GRANTS), source: 'anonymous', recheckAt: null });

export const tokenAccess = (claims: TokenClaims): Access => ({
  identity: claims.sub,
  grants: claims.grants,
  source: 'token',
  recheckAt: null,
});

/**
 * The access a hook's `allow` gives. With a token, the hook may narrow the token's grants but not
 * widen them, and may not name another identity than the token's.
 */
export function hookAccess(answer: HookGrant, claims: TokenClaims | undefined, now = Date.now()): Access {
  if (claims && answer.sub !== undefined && answer.sub !== claims.sub) {
    throw new ProtocolError('forbidden', 'the join hook named another identity than the token');
  }
  const offered = answer.grants ?? (claims ? [...claims.grants] : GRANTS);
  const grants = new Set(offered.filter((g) => !claims || claims.grants.has(g)));
  return {
    identity: claims?.sub ?? answer.sub ?? null,
    grants,
    source: 'hook',
    recheckAt: answer.recheckAfterSec === undefined ? null : now + answer.recheckAfterSec * 1000,
  };
}

export function toStoredAccess(a: Access): StoredAccess {
  return {
    source: a.source,
    grants: GRANTS.filter((g) => a.grants.has(g)),
    recheckAt: a.recheckAt === null ? null : new Date(a.recheckAt).toISOString(),
  };
}

export function fromStoredAccess(identity: string | null, s: StoredAccess): Access {
  return {
    identity,
    grants: new Set(s.grants),
    source: s.source,
    recheckAt: s.recheckAt === null ? null : Date.parse(s.recheckAt),
  };
}
