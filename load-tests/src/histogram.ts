// A mergeable latency histogram in microseconds: exact below 64 µs, then 32 buckets per power of
// two (≤ 3 % error), so workers can ship a few hundred numbers instead of every sample.

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS; // 32
const BUCKETS = (31 - SUB_BITS) * SUB + 2 * SUB;

function indexOf(us: number): number {
  const v = Math.min(Math.max(Math.ceil(us), 0), 0x7fffffff);
  if (v < 2 * SUB) return v;
  const shift = 31 - Math.clz32(v) - SUB_BITS;
  return shift * SUB + (v >>> shift);
}

function lowerBoundOf(index: number): number {
  if (index < 2 * SUB) return index;
  const shift = Math.floor(index / SUB) - 1;
  return (index - shift * SUB) << shift;
}

export interface HistogramSnapshot {
  /** [bucket index, count] for non-empty buckets. */
  buckets: Array<[number, number]>;
  count: number;
  sumUs: number;
  maxUs: number;
}

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumUs = 0;
  maxUs = 0;

  record(us: number): void {
    const i = indexOf(us);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.maxUs = 0;
  }

  merge(s: HistogramSnapshot): void {
    for (const [i, c] of s.buckets) this.counts[i] = (this.counts[i] ?? 0) + c;
    this.count += s.count;
    this.sumUs += s.sumUs;
    if (s.maxUs > this.maxUs) this.maxUs = s.maxUs;
  }

  snapshot(): HistogramSnapshot {
    const buckets: Array<[number, number]> = [];
    this.counts.forEach((c, i) => {
      if (c > 0) buckets.push([i, c]);
    });
    return { buckets, count: this.count, sumUs: this.sumUs, maxUs: this.maxUs };
  }

  /** Value (µs) below which the fraction q of samples lie; the midpoint of its bucket, capped at max. */
  quantileUs(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) {
        const lo = lowerBoundOf(i);
        const hi = lowerBoundOf(i + 1);
        return Math.min((lo + hi) / 2, this.maxUs);
      }
    }
    return this.maxUs;
  }

  /** Percentiles in milliseconds. */
  percentilesMs(): Percentiles {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: this.count,
      p50: ms(this.quantileUs(0.5)),
      p90: ms(this.quantileUs(0.9)),
      p99: ms(this.quantileUs(0.99)),
      max: ms(this.maxUs),
      mean: this.count ? ms(this.sumUs / this.count) : 0,
    };
  }

  static from(s: HistogramSnapshot | undefined): LatencyHistogram {
    const h = new LatencyHistogram();
    if (s) h.merge(s);
    return h;
  }
}

/** Microseconds on the process-wide monotonic clock, the same in every worker thread. */
export function nowUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}
