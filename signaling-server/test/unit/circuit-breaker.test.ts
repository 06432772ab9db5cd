import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerState } from '../../src/hook/circuit-breaker.js';

function breaker() {
  let now = 0;
  const changes: BreakerState[] = [];
  const b = new CircuitBreaker({ failureThreshold: 3, coolDownMs: 1000, now: () => now, onStateChange: (s) => changes.push(s) });
  return { b, changes, advance: (ms: number) => (now += ms) };
}

describe('circuit breaker', () => {
  it('opens after the threshold of failures in a row, and a success in between resets the count', () => {
    const { b, changes } = breaker();
    b.onFailure();
    b.onFailure();
    b.onSuccess();
    b.onFailure();
    b.onFailure();
    expect(b.tryAcquire()).toBe(true);
    b.onFailure();
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBe(false);
    expect(changes).toEqual(['open']);
  });

  it('lets one trial through after the cool-down; its success closes the breaker', () => {
    const { b, changes, advance } = breaker();
    for (let i = 0; i < 3; i++) b.onFailure();
    advance(999);
    expect(b.tryAcquire()).toBe(false);
    advance(1);
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false);
    b.onSuccess();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('a failed trial opens it for another cool-down; an abandoned one lets the next call try', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.onFailure();
    advance(1000);
    expect(b.tryAcquire()).toBe(true);
    b.abandon();
    expect(b.tryAcquire()).toBe(true);
    b.onFailure();
    expect(b.state).toBe('open');
    advance(999);
    expect(b.tryAcquire()).toBe(false);
    advance(1);
    expect(b.state).toBe('half-open');
  });
});
