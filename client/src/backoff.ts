// Reconnect delays: exponential growth with a cap, and jitter so that a node's clients do not all
// come back in the same millisecond after it fails.

export interface BackoffOptions {
  /** Delay before the first retry. Default 250 ms. */
  initialDelayMs?: number;
  /** Upper bound of any delay. Default 10 s. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay that is random, 0..1: the delay is drawn from [d·(1−jitter), d]. Default 0.5. */
  jitter?: number;
}

export class Backoff {
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private attempts = 0;

  constructor(
    options: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.initialDelayMs = Math.max(0, options.initialDelayMs ?? 250);
    this.maxDelayMs = Math.max(this.initialDelayMs, options.maxDelayMs ?? 10_000);
    this.factor = Math.max(1, options.factor ?? 2);
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  }

  /** Number of delays handed out since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** The delay before the next attempt; each call counts as one attempt. */
  next(): number {
    const base = Math.min(this.maxDelayMs, this.initialDelayMs * this.factor ** this.attempts);
    this.attempts += 1;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  reset(): void {
    this.attempts = 0;
  }
}
