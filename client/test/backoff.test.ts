import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/backoff.js';

describe('Backoff', () => {
  it('doubles the delay per attempt up to the cap when jitter draws nothing', () => {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 1_000, factor: 2, jitter: 0.5 }, () => 0);
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(backoff.attempt).toBe(6);
  });

  it('takes up to the jitter fraction off each delay', () => {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 1_000, jitter: 0.5 }, () => 1);
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([50, 100, 200]);
  });

  it('starts from the first delay again after a reset', () => {
    const backoff = new Backoff({ initialDelayMs: 100, jitter: 0 });
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.attempt).toBe(0);
    expect(backoff.next()).toBe(100);
  });
});
