import { describe, expect, it } from 'vitest';
import { anonymousAccess, fromStoredAccess, hookAccess, toStoredAccess } from '../../src/auth/access.js';
import type { TokenClaims } from '../../src/auth/token-verifier.js';
import { ProtocolError } from '../../src/protocol/errors.js';

const claims: TokenClaims = { sub: 'alice', room: '*', grants: new Set(['signal', 'broadcast']), exp: 2e9 };

describe('access from a token and the join hook', () => {
  it('without a token the hook decides the identity and the grants (all when it names none)', () => {
    expect(hookAccess({ sub: 'bob', grants: ['state'] }, undefined)).toMatchObject({
      identity: 'bob',
      grants: new Set(['state']),
      source: 'hook',
    });
    expect(hookAccess({}, undefined).grants).toEqual(anonymousAccess().grants);
  });

  it('with a token the hook narrows the grants and cannot widen them or change the identity', () => {
    expect(hookAccess({ grants: ['broadcast', 'state'] }, claims).grants).toEqual(new Set(['broadcast']));
    expect(hookAccess({}, claims)).toMatchObject({ identity: 'alice', grants: new Set(['signal', 'broadcast']) });
    expect(hookAccess({ sub: 'alice' }, claims).identity).toBe('alice');
    expect(() => hookAccess({ sub: 'mallory' }, claims)).toThrow(ProtocolError);
  });

  it('keeps the re-check time through the store', () => {
    const access = hookAccess({ sub: 'bob', grants: ['signal'], recheckAfterSec: 30 }, undefined, 1_000_000);
    expect(access.recheckAt).toBe(1_030_000);
    const stored = toStoredAccess(access);
    expect(stored).toEqual({ source: 'hook', grants: ['signal'], recheckAt: new Date(1_030_000).toISOString() });
    expect(fromStoredAccess('bob', stored)).toEqual(access);
  });
});
