import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressRateLimits } from '../../src/limits/address-buckets.js';
import { IpConnectionCounter } from '../../src/limits/ip-connections.js';
import { jsonDepthExceeds } from '../../src/limits/json-guard.js';
import { AbuseCounter, TokenBucket } from '../../src/limits/token-bucket.js';

function fakeClock(start = 1000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

function takeMany(bucket: TokenBucket, n: number): number {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (bucket.take()) allowed++;
  return allowed;
}

describe('TokenBucket', () => {
  it('lets a full burst through at once, then drops', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(50, 100, clock.now);
    expect(takeMany(bucket, 100)).toBe(100);
    expect(bucket.take()).toBe(false);
  });

  it('refills at the configured rate, including fractions of a token', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(50, 1, clock.now); // one token every 20 ms
    expect(bucket.take()).toBe(true);
    clock.advance(10);
    expect(bucket.take()).toBe(false);
    clock.advance(10);
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    clock.advance(1000);
    expect(takeMany(bucket, 10)).toBe(1); // capped at the burst of 1
  });

  it('sustains exactly the rate over a long run of steady sending', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 5, clock.now);
    takeMany(bucket, 5); // drain the burst
    let allowed = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      clock.advance(1);
      if (bucket.take()) allowed++;
    }
    expect(allowed).toBeGreaterThanOrEqual(99);
    expect(allowed).toBeLessThanOrEqual(100);
  });

  it('does not grow past the burst after a long idle period', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(100, 3, clock.now);
    clock.advance(3_600_000);
    expect(takeMany(bucket, 10)).toBe(3);
  });

  it('neither refills nor drains the bucket when the clock steps backwards', () => {
    const clock = fakeClock(10_000);
    const drained = new TokenBucket(1, 1, clock.now);
    const full = new TokenBucket(1, 2, clock.now);
    expect(drained.take()).toBe(true);
    clock.advance(-5_000);
    expect(drained.take()).toBe(false);
    expect(full.take()).toBe(true);
    expect(full.take()).toBe(true);
    clock.advance(6_000); // one second after the last take that counted
    expect(drained.take()).toBe(true);
    expect(drained.take()).toBe(false);
  });

  it('rejects nonsensical configuration', () => {
    expect(() => new TokenBucket(0, 10)).toThrow(RangeError);
    expect(() => new TokenBucket(10, 0)).toThrow(RangeError);
    expect(() => new TokenBucket(Number.NaN, 10)).toThrow(RangeError);
  });
});

describe('AbuseCounter', () => {
  it('asks for a close only when more than maxStrikes violations fall inside the window', () => {
    const clock = fakeClock();
    const counter = new AbuseCounter(3, 1000, clock.now);
    expect(counter.strike()).toBe(false);
    clock.advance(100);
    expect(counter.strike()).toBe(false);
    clock.advance(100);
    expect(counter.strike()).toBe(false);
    clock.advance(100);
    expect(counter.strike()).toBe(true);
  });

  it('forgives violations spread wider than the window', () => {
    const clock = fakeClock();
    const counter = new AbuseCounter(3, 1000, clock.now);
    for (let i = 0; i < 50; i++) {
      expect(counter.strike()).toBe(false);
      clock.advance(334); // four strikes always span at least 1002 ms
    }
  });

  it('counts a burst after a quiet spell from zero, keeping only recent strikes', () => {
    const clock = fakeClock();
    const counter = new AbuseCounter(2, 1000, clock.now);
    counter.strike();
    counter.strike();
    clock.advance(5000);
    expect(counter.strike()).toBe(false);
    expect(counter.strike()).toBe(false);
    expect(counter.strike()).toBe(true);
  });

  it('starts over after reset', () => {
    const clock = fakeClock();
    const counter = new AbuseCounter(2, 1000, clock.now);
    counter.strike();
    counter.strike();
    counter.reset();
    expect(counter.strike()).toBe(false);
    expect(counter.strike()).toBe(false);
    expect(counter.strike()).toBe(true);
  });

  it('with maxStrikes 0 closes on the first violation', () => {
    expect(new AbuseCounter(0, 1000, fakeClock().now).strike()).toBe(true);
  });
});

/** Reference: nesting depth of a parsed value (scalars 0, `[]`/`{}` 1). */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children: unknown[] = Array.isArray(value) ? value : Object.values(value);
  let max = 0;
  for (const child of children) max = Math.max(max, depthOf(child));
  return 1 + max;
}

describe('jsonDepthExceeds', () => {
  it('measures scalars as depth 0 and each object or array level as one', () => {
    expect(jsonDepthExceeds('1', 0)).toBe(false);
    expect(jsonDepthExceeds('"x"', 0)).toBe(false);
    expect(jsonDepthExceeds('{}', 0)).toBe(true);
    expect(jsonDepthExceeds('{}', 1)).toBe(false);
    expect(jsonDepthExceeds('{"a":[{"b":[]}]}', 4)).toBe(false);
    expect(jsonDepthExceeds('{"a":[{"b":[]}]}', 3)).toBe(true);
    expect(jsonDepthExceeds('[[],[],[[]]]', 2)).toBe(true);
    expect(jsonDepthExceeds('[[],[],[]]', 2)).toBe(false);
  });

  it('ignores brackets inside string values and keys', () => {
    expect(jsonDepthExceeds('{"a":"[[[[[[{{{{"}', 1)).toBe(false);
    expect(jsonDepthExceeds('{"[[[[":"]]]]","b":[1]}', 1)).toBe(true);
    expect(jsonDepthExceeds('{"[[[[":"]]]]","b":[1]}', 2)).toBe(false);
  });

  it('does not end a string at an escaped quote', () => {
    // The string is  \"[[[[\"  : the brackets are inside it.
    expect(jsonDepthExceeds('{"a":"\\"[[[[\\""}', 1)).toBe(false);
  });

  it('ends a string at a quote preceded by an escaped backslash', () => {
    // The string is a single backslash; the arrays after it are real nesting.
    const text = '{"a":"\\\\","b":[[[1]]]}';
    expect(JSON.parse(text)).toEqual({ a: '\\', b: [[[1]]] });
    expect(jsonDepthExceeds(text, 3)).toBe(true);
    expect(jsonDepthExceeds(text, 4)).toBe(false);
  });

  it('gives stray closing brackets no credit against later opening ones', () => {
    expect(jsonDepthExceeds(']]]]]' + '['.repeat(5), 4)).toBe(true);
  });

  it('rejects hostile nesting far past the limit quickly', () => {
    const text = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
    expect(jsonDepthExceeds(text, 32)).toBe(true);
    expect(jsonDepthExceeds(text, 999_999)).toBe(true);
    expect(jsonDepthExceeds(text, 1_000_000)).toBe(false);
  });

  it('agrees with the depth of JSON.parse on generated JSON, including strings full of brackets, quotes and backslashes', () => {
    const nasty = fc.constantFrom('[', ']', '{', '}', '"', '\\', ',', ':', 'a', ' ', '\u2028', 'é');
    fc.assert(
      fc.property(
        fc.jsonValue({ maxDepth: 8, stringUnit: nasty }),
        fc.constantFrom<number | undefined>(undefined, 2),
        fc.integer({ min: 0, max: 10 }),
        (value, indent, maxDepth) => {
          const text = JSON.stringify(value, null, indent);
          const depth = depthOf(JSON.parse(text));
          expect(jsonDepthExceeds(text, maxDepth)).toBe(depth > maxDepth);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('TokenBucket charged by bytes', () => {
  it('takes a cost at a time, and charges a cost above the burst as the burst', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1000, 4000, clock.now);
    expect(bucket.take(3000)).toBe(true);
    expect(bucket.take(2000)).toBe(false);
    clock.advance(1000);
    expect(bucket.take(2000)).toBe(true);
    clock.advance(10_000);
    expect(bucket.take(1_000_000)).toBe(true); // a full bucket lets one oversized message through
    expect(bucket.take(1)).toBe(false);
    expect(bucket.refillMs).toBe(4000);
  });
});

describe('AddressRateLimits', () => {
  const rates = { bytes: { perSec: 100, burst: 100 }, writes: { perSec: 1, burst: 2 }, busBytes: { perSec: 50, burst: 100 } };

  it('shares one set of buckets between the connections of an address', () => {
    const clock = fakeClock();
    const limits = new AddressRateLimits(rates, clock.now);
    const first = limits.acquire('198.51.100.4');
    const second = limits.acquire('198.51.100.4');
    expect(second).toBe(first);
    expect(first.writes.take()).toBe(true);
    expect(second.writes.take()).toBe(true);
    expect(first.writes.take()).toBe(false);
    expect(limits.acquire('198.51.100.5').writes.take()).toBe(true);
  });

  it("keeps an address's spent buckets across a reconnect, and forgets it once they would be full", () => {
    const clock = fakeClock();
    const limits = new AddressRateLimits(rates, clock.now);
    const spent = limits.acquire('a');
    expect(spent.busBytes.take(100)).toBe(true);
    limits.release(spent);
    limits.sweep();
    const again = limits.acquire('a');
    expect(again.busBytes.take(100)).toBe(false);
    limits.release(again);
    clock.advance(2000); // the slowest bucket (100 bytes at 50/s) refills in 2 s
    limits.sweep();
    expect(limits.size).toBe(0);
    const held = limits.acquire('b');
    clock.advance(60_000);
    limits.sweep();
    expect(limits.size).toBe(1); // an address with a connection is never forgotten
    limits.release(held);
  });
});

describe('IpConnectionCounter', () => {
  it('admits up to the limit per IP, independently for each IP', () => {
    const counter = new IpConnectionCounter(2);
    expect(counter.tryAcquire('10.0.0.1')).toBe(true);
    expect(counter.tryAcquire('10.0.0.1')).toBe(true);
    expect(counter.tryAcquire('10.0.0.1')).toBe(false);
    expect(counter.tryAcquire('10.0.0.2')).toBe(true);
    expect(counter.count('10.0.0.1')).toBe(2);
    counter.release('10.0.0.1');
    expect(counter.tryAcquire('10.0.0.1')).toBe(true);
  });

  it('forgets an IP when its last connection closes', () => {
    const counter = new IpConnectionCounter(5);
    counter.tryAcquire('::1');
    counter.tryAcquire('::1');
    expect(counter.size()).toBe(1);
    counter.release('::1');
    expect(counter.size()).toBe(1);
    counter.release('::1');
    expect(counter.size()).toBe(0);
  });

  it('ignores releases of IPs it does not hold, so they cannot raise the limit', () => {
    const counter = new IpConnectionCounter(1);
    counter.release('10.0.0.9');
    expect(counter.size()).toBe(0);
    expect(counter.count('10.0.0.9')).toBe(0);
    expect(counter.tryAcquire('10.0.0.9')).toBe(true);
    expect(counter.tryAcquire('10.0.0.9')).toBe(false);
  });

  it('never leaks: after any sequence of connects and closes, it tracks exactly the open ones', () => {
    const ips = ['a', 'b', 'c', 'd'];
    const op = fc.record({ acquire: fc.boolean(), ip: fc.constantFrom(...ips) });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 200 }), (max, ops) => {
        const counter = new IpConnectionCounter(max);
        const open = new Map<string, number>();
        for (const { acquire, ip } of ops) {
          const n = open.get(ip) ?? 0;
          if (acquire) {
            // A refused acquire is not a connection; it is never released.
            expect(counter.tryAcquire(ip)).toBe(n < max);
            if (n < max) open.set(ip, n + 1);
          } else if (n > 0) {
            counter.release(ip);
            if (n === 1) open.delete(ip);
            else open.set(ip, n - 1);
          }
          expect(counter.size()).toBe(open.size);
        }
        for (const [ip, n] of open) for (let i = 0; i < n; i++) counter.release(ip);
        expect(counter.size()).toBe(0);
      }),
    );
  });

  it('rejects a limit below one', () => {
    expect(() => new IpConnectionCounter(0)).toThrow(RangeError);
  });
});
