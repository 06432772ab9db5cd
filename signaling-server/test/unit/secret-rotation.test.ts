// Rotating AUTH_JWT_SECRET without refusing anyone: while AUTH_JWT_SECRET_PREVIOUS holds the old
// secret, tokens signed with either are accepted; nothing else is.
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../src/auth/token-verifier.js';

const OLD = 'old-secret-0123456789abcdef0123456789';
const NEW = 'new-secret-0123456789abcdef0123456789';
const sign = (secret: string, exp: string | number = '5m') =>
  new SignJWT({ room: 'lobby' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('alice')
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));

describe('AUTH_JWT_SECRET_PREVIOUS', () => {
  it('accepts tokens signed with the new or the previous secret during a rotation', async () => {
    const verifier = createTokenVerifier({ secret: NEW, previousSecret: OLD })!;
    expect((await verifier.verify(await sign(NEW))).sub).toBe('alice');
    expect((await verifier.verify(await sign(OLD))).sub).toBe('alice');
  });

  it('still refuses a third secret, and an expired token signed with the previous one', async () => {
    const verifier = createTokenVerifier({ secret: NEW, previousSecret: OLD })!;
    await expect(verifier.verify(await sign('some-other-secret-0123456789abcdef'))).rejects.toMatchObject({
      message: 'token signature invalid',
    });
    await expect(verifier.verify(await sign(OLD, Math.floor(Date.now() / 1000) - 60))).rejects.toMatchObject({
      message: 'token expired',
    });
  });

  it('without it, the old secret is refused', async () => {
    const verifier = createTokenVerifier({ secret: NEW })!;
    await expect(verifier.verify(await sign(OLD))).rejects.toMatchObject({ code: 'unauthorized' });
  });
});
