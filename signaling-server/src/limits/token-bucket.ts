// Per-connection message rate limiting: a token bucket for each message, and a strike counter that
// tells the transport when repeated violations deserve a 1008 close. Both keep only numbers, so the
// hot path allocates nothing.

/** Time source in milliseconds; monotonic by default so wall-clock jumps neither starve nor flood. */
export type Clock = () => number;

const monotonicMs: Clock = () => performance.now();

export class TokenBucket {
  private readonly perMs: number;
  private tokens: number;
  private last: number;

  /** Refills `ratePerSec` tokens per second up to `burst`; starts full. */
  constructor(
    ratePerSec: number,
    private readonly burst: number,
    private readonly now: Clock = monotonicMs,
  ) {
    if (!(ratePerSec > 0)) throw new RangeError('ratePerSec must be > 0');
    if (!(burst >= 1)) throw new RangeError('burst must be >= 1');
    this.perMs = ratePerSec / 1000;
    this.tokens = burst;
    this.last = now();
  }

  /** Milliseconds an empty bucket takes to fill up again. */
  get refillMs(): number {
    return this.burst / this.perMs;
  }

  /**
   * Takes `cost` tokens (a message, or its bytes); false means the caller is over its rate and the
   * message should be dropped. A cost above the burst is charged as the burst, so that a message
   * the other limits allow can always pass a bucket that is full.
   */
  take(cost = 1): boolean {
    const t = this.now();
    // An injected clock may step back; that neither refills nor drains the bucket.
    if (t > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + (t - this.last) * this.perMs);
      this.last = t;
    }
    const charge = Math.min(cost, this.burst);
    if (this.tokens < charge) return false;
    this.tokens -= charge;
    return true;
  }
}

/**
 * Counts rate-limit violations in a sliding window. `strike()` answers true once more than
 * `maxStrikes` violations fall within `windowMs`, i.e. when the connection should be closed.
 */
export class AbuseCounter {
  // Ring of the last maxStrikes + 1 strike times: the window holds too many strikes exactly when
  // the oldest of them is still inside it. Allocated at the first strike: every connection has a
  // counter and almost none ever strikes, and an idle connection should cost as little as it can.
  private times: Float64Array | null = null;
  private next = 0;
  private count = 0;

  constructor(
    private readonly maxStrikes: number,
    private readonly windowMs: number,
    private readonly now: Clock = monotonicMs,
  ) {
    if (!Number.isInteger(maxStrikes) || maxStrikes < 0) throw new RangeError('maxStrikes must be an integer >= 0');
    if (!(windowMs > 0)) throw new RangeError('windowMs must be > 0');
  }

  strike(): boolean {
    const t = this.now();
    const times = (this.times ??= new Float64Array(this.maxStrikes + 1));
    times[this.next] = t;
    this.next = (this.next + 1) % times.length;
    if (this.count < times.length) this.count += 1;
    if (this.count < times.length) return false;
    // After the write, `next` points at the oldest of the last maxStrikes + 1 strikes.
    const oldest = times[this.next] as number;
    return t - oldest < this.windowMs;
  }

  reset(): void {
    this.count = 0;
    this.next = 0;
  }
}
