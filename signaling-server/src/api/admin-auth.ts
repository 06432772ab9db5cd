// Who may use the operator API: API keys from ADMIN_API_KEYS (each `read:` or `write:`), compared in
// constant time, or a JWT signed with the node's token key that carries an admin grant. With
// neither configured the API is off.
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

export type Access = 'read' | 'write';

export interface ApiKey {
  access: Access;
  key: string;
}

export type AuthResult = { ok: true; access: Access; who: string } | { ok: false; reason: string };

/** Admin token claims: `grants` holds `admin:read` or `admin:write` (which includes read). */
const AdminTokenPayload = z.object({
  sub: z.string().min(1).max(256),
  grants: z.array(z.string()).max(16),
});

/**
 * Parses ADMIN_API_KEYS: comma-separated `read:KEY` or `write:KEY`; a key without a prefix is a
 * write key. Keys must be at least 16 characters: short ones are guessable.
 */
export function parseApiKeys(value: string | undefined): ApiKey[] {
  if (value === undefined || value.trim() === '') return [];
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const match = /^(read|write):(.*)$/.exec(entry);
      const access: Access = match ? (match[1] as Access) : 'write';
      const key = match ? match[2]! : entry;
      if (key.length < 16) throw new Error('ADMIN_API_KEYS: every key needs at least 16 characters');
      return { access, key };
    });
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

export class AdminAuth {
  private readonly keys: { access: Access; digest: Buffer; label: string }[];

  constructor(
    keys: ApiKey[],
    /** Checks a JWT's signature and expiry (auth/token-verifier.ts); null: admin tokens are off. */
    private readonly verifyToken: ((token: string) => Promise<unknown>) | null,
  ) {
    // A key's label in logs: its position, never the key.
    this.keys = keys.map((k, i) => ({ access: k.access, digest: digest(k.key), label: `key#${i + 1}` }));
  }

  get isEnabled(): boolean {
    return this.keys.length > 0 || this.verifyToken !== null;
  }

  /** Reads `Authorization: Bearer <key or JWT>` (or `x-api-key: <key>`). */
  async authenticate(headers: Record<string, string>): Promise<AuthResult> {
    const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '')?.[1]?.trim();
    const presented = bearer ?? headers['x-api-key'];
    if (!presented) return { ok: false, reason: 'no API key or admin token (Authorization: Bearer ...)' };
    const key = this.matchKey(presented);
    if (key) return { ok: true, access: key.access, who: key.label };
    if (this.verifyToken && presented.split('.').length === 3) return this.checkToken(presented);
    // An entry copied whole from ADMIN_API_KEYS: the scope is configuration, not part of the key.
    const scope = /^(read|write):/.exec(presented)?.[1];
    if (scope) {
      return {
        ok: false,
        reason: `unknown API key: send the key without its "${scope}:" prefix (ADMIN_API_KEYS=${scope}:KEY means the key is KEY)`,
      };
    }
    return { ok: false, reason: 'unknown API key' };
  }

  /** Compares against every key, whatever matched first, so timing says nothing about which. */
  private matchKey(presented: string) {
    const candidate = digest(presented);
    let found: (typeof this.keys)[number] | undefined;
    for (const k of this.keys) if (timingSafeEqual(k.digest, candidate) && !found) found = k;
    return found;
  }

  private async checkToken(token: string): Promise<AuthResult> {
    let payload: unknown;
    try {
      payload = await this.verifyToken!(token);
    } catch (err) {
      return { ok: false, reason: err instanceof Error ? err.message : 'invalid token' };
    }
    const parsed = AdminTokenPayload.safeParse(payload);
    if (!parsed.success) return { ok: false, reason: 'the token carries no admin grant' };
    const { sub, grants } = parsed.data;
    if (grants.includes('admin:write')) return { ok: true, access: 'write', who: `token:${sub}` };
    if (grants.includes('admin:read')) return { ok: true, access: 'read', who: `token:${sub}` };
    return { ok: false, reason: 'the token carries no admin grant' };
  }
}
