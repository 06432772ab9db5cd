// Whether a decoded JSON value can go into Postgres as it is and come back the same. Postgres
// refuses U+0000 and lone surrogates (in text and jsonb alike) with an error that would reach the
// client as `unavailable` and count as an outage; numbers past 2^53 do not come back as written,
// and deep or wide values cost every reader. The protocol schemas (for the fields that are stored)
// and the operator API (for every body, path and query value) check here, so such input is the
// sender's `bad-request`. Size is not checked: MAX_MESSAGE_BYTES bounds every frame and body.
import { z } from 'zod';

/** Levels of objects and arrays a stored value may have (`{}` is 1). */
export const MAX_STORED_DEPTH = 64;
/** Entries of one stored object or array. */
export const MAX_STORED_ENTRIES = 1000;
/** The largest magnitude a stored number may have: beyond it JSON numbers lose digits. */
export const MAX_STORED_NUMBER = Number.MAX_SAFE_INTEGER;

// A NUL, a high surrogate with no low one after it, or a low one with no high one before it.
const UNSTORABLE_CHAR = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why Postgres could not store this string, or null when it can. */
export function stringProblem(s: string): string | null {
  const found = UNSTORABLE_CHAR.exec(s);
  if (!found) return null;
  return found[0] === '\u0000' ? 'holds U+0000' : 'holds a lone surrogate (not UTF-16 text)';
}

/** Why Postgres could not store this JSON value (as JSON.parse returns it), or null when it can. */
export function jsonProblem(value: unknown): string | null {
  return problemAt(value, 0, '');
}

function problemAt(value: unknown, depth: number, path: string): string | null {
  const where = (problem: string) => (path === '' ? problem : `${path.slice(1)}: ${problem}`);
  if (typeof value === 'string') {
    const problem = stringProblem(value);
    return problem && where(`a string that ${problem}`);
  }
  if (typeof value === 'number') {
    if (Number.isFinite(value) && Math.abs(value) <= MAX_STORED_NUMBER) return null;
    return where(`a number beyond ±${MAX_STORED_NUMBER}`);
  }
  if (typeof value !== 'object' || value === null) return null;
  if (depth + 1 > MAX_STORED_DEPTH) return where(`nested deeper than ${MAX_STORED_DEPTH}`);
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  if (entries.length > MAX_STORED_ENTRIES) return where(`more than ${MAX_STORED_ENTRIES} entries`);
  for (const [key, item] of entries) {
    const keyProblem = stringProblem(key);
    if (keyProblem) return where(`a key that ${keyProblem}`);
    const problem = problemAt(item, depth + 1, `${path}.${key.slice(0, 32)}`);
    if (problem) return problem;
  }
  return null;
}

/** `schema`, refusing strings Postgres could not store. */
export const storableString = <T extends z.ZodString>(schema: T) =>
  schema.superRefine((s, ctx) => {
    const problem = stringProblem(s);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** A JSON object Postgres can store as jsonb and give back the same (meta, room state). */
export const StorableObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const problem = jsonProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Room state versions live in an integer column. */
export const MAX_STATE_VERSION = 2 ** 31 - 1;
