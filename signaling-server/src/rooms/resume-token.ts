// Resume tokens: "<participant id>.<secret>". Only a hash of the secret is stored, and each resume
// replaces it, so a token works once, for its own participant and room, until its grace ends.
import { createHash, randomBytes } from 'node:crypto';

export const newParticipantId = (): string => randomBytes(12).toString('base64url');

export function newResumeSecret(): { secret: string; hash: string } {
  const secret = randomBytes(24).toString('base64url');
  return { secret, hash: hashResumeSecret(secret) };
}

export const hashResumeSecret = (secret: string): string => createHash('sha256').update(secret).digest('base64url');

export const formatResumeToken = (participantId: string, secret: string): string => `${participantId}.${secret}`;

export function parseResumeToken(token: string): { participantId: string; secret: string } | null {
  const dot = token.indexOf('.');
  if (dot <= 0 || dot === token.length - 1) return null;
  return { participantId: token.slice(0, dot), secret: token.slice(dot + 1) };
}
