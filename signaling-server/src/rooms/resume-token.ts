// Resume tokens: "<participant id>.<secret>". Only a hash of the secret is stored, and each resume
// replaces it with the hash of the next secret, derived from the presented one. So a token works
// once for its own participant and room, until its grace ends; and once more if the connection it
// was used on ended before its `joined` arrived: a retry with the same token finds the same next
// hash. No one who only knows the stored hash can derive either secret.
import { createHash, randomBytes } from 'node:crypto';

export const newParticipantId = (): string => randomBytes(12).toString('base64url');

export function newResumeSecret(): { secret: string; hash: string } {
  const secret = randomBytes(24).toString('base64url');
  return { secret, hash: hashResumeSecret(secret) };
}

/** The secret a resume with `secret` hands out: the same for a retry of that resume. */
export function nextResumeSecret(secret: string): { secret: string; hash: string } {
  const next = createHash('sha256')
    .update('signaling-resume-next\n')
    .update(secret)
    .digest()
    .subarray(0, 24)
    .toString('base64url');
  return { secret: next, hash: hashResumeSecret(next) };
}

export const hashResumeSecret = (secret: string): string => createHash('sha256').update(secret).digest('base64url');

export const formatResumeToken = (participantId: string, secret: string): string => `${participantId}.${secret}`;

export function parseResumeToken(token: string): { participantId: string; secret: string } | null {
  const dot = token.indexOf('.');
  if (dot <= 0 || dot === token.length - 1) return null;
  return { participantId: token.slice(0, dot), secret: token.slice(dot + 1) };
}
