// What Postgres can store as it is: text without U+0000 or lone surrogates, numbers within ±2^53,
// and values neither deeper nor wider than the bounds; everything else named with where it is.
import { describe, expect, it } from 'vitest';
import { MAX_STORED_DEPTH, MAX_STORED_ENTRIES, jsonProblem, stringProblem } from '../../src/protocol/storable.js';

describe('storable values', () => {
  it('takes any well-formed text, surrogate pairs included', () => {
    expect(stringProblem('alice 😀 ünïcode')).toBeNull();
    expect(jsonProblem({ name: 'x😀', n: [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0.5, -0], ok: null })).toBeNull();
  });

  it('refuses U+0000 and lone surrogates in values and keys, naming where', () => {
    expect(stringProblem('a\u0000b')).toMatch(/U\+0000/);
    expect(stringProblem('\ud83d')).toMatch(/lone surrogate/);
    expect(stringProblem('x\ude00')).toMatch(/lone surrogate/);
    expect(jsonProblem({ a: { b: ['ok', 'no\u0000'] } })).toBe('a.b.1: a string that holds U+0000');
    expect(jsonProblem({ 'k\ud800': 1 })).toMatch(/^a key that holds a lone surrogate/);
  });

  it('refuses numbers past 2^53 and non-finite ones', () => {
    expect(jsonProblem({ n: Number.MAX_SAFE_INTEGER + 2 })).toMatch(/^n: a number beyond/);
    expect(jsonProblem([JSON.parse('1e400')])).toMatch(/^0: a number beyond/);
  });

  it('refuses values deeper or wider than the bounds, and takes them at the bounds', () => {
    const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);
    expect(jsonProblem(nested(MAX_STORED_DEPTH))).toBeNull();
    expect(jsonProblem(nested(MAX_STORED_DEPTH + 1))).toMatch(/nested deeper than/);
    expect(jsonProblem(Array(MAX_STORED_ENTRIES).fill(0))).toBeNull();
    expect(jsonProblem({ a: Array(MAX_STORED_ENTRIES + 1).fill(0) })).toMatch(/^a: more than/);
  });
});
