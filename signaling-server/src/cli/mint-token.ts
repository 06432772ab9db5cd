// Mints an HS256 join token signed with AUTH_JWT_SECRET, for `npm run token` and `signalctl token`.
// For development and tests; production tokens come from the application's own auth service.

import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { tokenPayloadSchema, type Grant } from '../auth/token-verifier.js';

export const USAGE =
  'usage: token --room <room|*> --sub <identity> [--name <display name>] [--grants signal,broadcast,state] [--ttl <seconds>]';

export class UsageError extends Error {}

export async function mintJoinToken(argv: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { values } = (() => {
    try {
      return parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          room: { type: 'string' },
          sub: { type: 'string' },
          name: { type: 'string' },
          grants: { type: 'string' },
          ttl: { type: 'string', default: '3600' },
        },
      });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })();

  const secret = env.AUTH_JWT_SECRET;
  if (secret === undefined || secret.trim() === '') {
    throw new UsageError('AUTH_JWT_SECRET is not set; it must be the secret the server verifies tokens with');
  }
  if (values.room === undefined) throw new UsageError('--room is required');
  if (values.sub === undefined) throw new UsageError('--sub is required');

  const ttlText = values.ttl ?? '3600';
  const ttl = Number(ttlText);
  if (!/^\d+$/.test(ttlText) || !Number.isSafeInteger(ttl) || ttl <= 0) {
    throw new UsageError('--ttl must be a positive number of seconds');
  }

  const grants =
    values.grants === undefined
      ? undefined
      : values.grants
          .split(',')
          .map((g) => g.trim())
          .filter((g) => g !== '');
  const iat = Math.floor(Date.now() / 1000);
  const payload = { sub: values.sub, room: values.room, name: values.name, grants, exp: iat + ttl };

  // Same schema the server applies, so the CLI never mints a token the server would refuse.
  const checked = tokenPayloadSchema.safeParse(payload);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new UsageError(`invalid --${String(issue?.path[0] ?? 'argument')}: ${issue?.message ?? 'invalid'}`);
  }

  const claims: { room: string; name?: string; grants?: Grant[] } = { room: checked.data.room };
  if (checked.data.name !== undefined) claims.name = checked.data.name;
  if (checked.data.grants !== undefined) claims.grants = checked.data.grants;

  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(checked.data.sub)
    .setIssuedAt(iat)
    .setExpirationTime(checked.data.exp)
    .sign(new TextEncoder().encode(secret));
}
