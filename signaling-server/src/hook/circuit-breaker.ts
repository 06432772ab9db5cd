// A circuit breaker for one backend: after `failureThreshold` failures in a row it opens and
// refuses every call for `coolDownMs`, so an unreachable backend costs a join nothing instead of a
// timeout; then one trial call (half-open) decides whether it closes again or stays open.

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  failureThreshold: number;
  coolDownMs: number;
  /** Told every change of state (for the metric and a log line). */
  onStateChange?: (state: BreakerState) => void;
  now?: () => number;
}

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  /** In half-open, whether the one trial call is out. */
  private isTrialOut = false;

  constructor(private readonly opts: CircuitBreakerOptions) {}

  get state(): BreakerState {
    if (this.current === 'open' && this.now() - this.openedAt >= this.opts.coolDownMs) this.moveTo('half-open');
    return this.current;
  }

  /** Whether a call may go out now; a call that may must then report onSuccess() or onFailure(). */
  tryAcquire(): boolean {
    switch (this.state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        if (this.isTrialOut) return false;
        this.isTrialOut = true;
        return true;
    }
  }

  onSuccess(): void {
    this.failures = 0;
    this.isTrialOut = false;
    if (this.current !== 'closed') this.moveTo('closed');
  }

  /** A call that was let through but never went out: it proves nothing either way. */
  abandon(): void {
    this.isTrialOut = false;
  }

  onFailure(): void {
    this.failures++;
    this.isTrialOut = false;
    if (this.current === 'half-open' || this.failures >= this.opts.failureThreshold) {
      this.openedAt = this.now();
      if (this.current !== 'open') this.moveTo('open');
    }
  }

  private moveTo(state: BreakerState): void {
    this.current = state;
    this.opts.onStateChange?.(state);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
