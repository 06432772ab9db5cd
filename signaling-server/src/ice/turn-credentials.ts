// Time-limited TURN credentials in the "TURN REST API" scheme (draft-uberti-behave-turn-rest),
// which coturn's `use-auth-secret` and most hosted TURN services check without a database: the
// username carries its own expiry, and the password is an HMAC of the username under a secret
// the TURN server shares. Nothing here stores or logs anything.
import { createHmac } from 'node:crypto';

export interface TurnCredential {
  /** `<expiry in Unix seconds>:<identity>`. */
  username: string;
  /** base64(HMAC-SHA1(secret, username)). */
  credential: string;
}

/**
 * The credential a TURN server with `secret` accepts until `expiresAtSeconds` (Unix time) for
 * `identity`. The identity must not contain `:`, which separates it from the expiry.
 */
export function mintTurnCredential(secret: string, identity: string, expiresAtSeconds: number): TurnCredential {
  if (identity.includes(':')) throw new RangeError('a TURN identity must not contain ":"');
  const username = `${Math.floor(expiresAtSeconds)}:${identity}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential };
}
