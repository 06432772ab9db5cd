// A warning repeated under a fault is logged once per interval, with how many were left out.
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { RepeatedWarnings } from '../../src/log-repeats.js';

let lines: { fields: Record<string, unknown>; msg: string }[];
let warnings: RepeatedWarnings;

beforeEach(() => {
  vi.useFakeTimers();
  lines = [];
  warnings = new RepeatedWarnings(
    { warn: ((fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg })) as never },
    1000,
  );
});
afterEach(() => {
  vi.useRealTimers();
});

it('logs the first occurrence at once and one line with the count of the rest at the end of the interval', () => {
  for (let i = 0; i < 240; i++) warnings.warn({ room: `r${i}` }, 'bus publish failed');
  expect(lines).toEqual([{ fields: { room: 'r0' }, msg: 'bus publish failed' }]);
  vi.advanceTimersByTime(1000);
  expect(lines).toEqual([
    { fields: { room: 'r0' }, msg: 'bus publish failed' },
    { fields: { room: 'r239', suppressed: 239 }, msg: 'bus publish failed' },
  ]);
});

it('under a fault that goes on, logs at most one line per interval, and no line once it stops', () => {
  for (let ms = 0; ms < 10_000; ms += 4) {
    warnings.warn({}, 'bus publish failed');
    vi.advanceTimersByTime(4);
  }
  vi.advanceTimersByTime(5000);
  expect(lines.length).toBeLessThanOrEqual(11);
  expect(lines.length).toBeGreaterThanOrEqual(10);
  // Every occurrence is either a line or counted in one.
  const told = lines.reduce((sum, l) => sum + 1 + ((l.fields.suppressed as number | undefined) ?? 0), 0);
  // The lines that only report suppressed ones stand for those, not for one more.
  const reportLines = lines.filter((l) => l.fields.suppressed !== undefined).length;
  expect(told - reportLines).toBe(2500);
});

it('keeps each message apart, and logs one that comes after a quiet interval at once', () => {
  warnings.warn({}, 'a');
  warnings.warn({}, 'b');
  warnings.warn({}, 'a');
  expect(lines.map((l) => l.msg)).toEqual(['a', 'b']);
  vi.advanceTimersByTime(1000);
  expect(lines.map((l) => [l.msg, l.fields.suppressed])).toEqual([
    ['a', undefined],
    ['b', undefined],
    ['a', 1],
  ]);
  vi.advanceTimersByTime(5000);
  warnings.warn({ again: true }, 'b');
  expect(lines.at(-1)).toEqual({ fields: { again: true }, msg: 'b' });
});
