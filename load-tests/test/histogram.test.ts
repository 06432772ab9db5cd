// The latency histogram the workers ship to the orchestrator: its percentiles must stay within
// its stated 3 % of the exact ones, and merging must equal recording everything in one place.
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../src/histogram.js';

function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

describe('latency histogram', () => {
  const samples = Array.from({ length: 20_000 }, (_, i) => 50 + ((i * 7919) % 20_000) * 3.7 + (i % 13) * 1000);
  const sorted = [...samples].sort((a, b) => a - b);

  it('reports p50, p90 and p99 within 3 % of the exact values, and the exact max', () => {
    const h = new LatencyHistogram();
    for (const s of samples) h.record(s);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = exactQuantile(sorted, q);
      expect(Math.abs(h.quantileUs(q) - exact) / exact).toBeLessThan(0.03);
    }
    expect(h.maxUs).toBe(sorted.at(-1));
    expect(h.count).toBe(samples.length);
  });

  it('merges worker snapshots into the same percentiles as one histogram of every sample', () => {
    const whole = new LatencyHistogram();
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    samples.forEach((s, i) => {
      whole.record(s);
      (i % 2 ? a : b).record(s);
    });
    const merged = LatencyHistogram.from(a.snapshot());
    merged.merge(b.snapshot());
    expect(merged.percentilesMs()).toEqual(whole.percentilesMs());
  });
});
