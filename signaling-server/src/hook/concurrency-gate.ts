// Bounds the calls one node has out to a backend: at most `maxInFlight` at once, at most
// `maxWaiting` waiting for a slot, each for at most `maxWaitMs`. Beyond that a call is refused at
// once (GateFull) instead of joining a queue that grows as fast as the backend slows down.

export class GateFull extends Error {
  constructor(readonly reason: 'queue-full' | 'wait-timeout') {
    super(reason === 'queue-full' ? 'too many calls waiting' : 'waited too long for a slot');
    this.name = 'GateFull';
  }
}

export interface ConcurrencyGateOptions {
  maxInFlight: number;
  maxWaiting: number;
  maxWaitMs: number;
}

interface Waiter {
  start: () => void;
  timer: NodeJS.Timeout;
}

export class ConcurrencyGate {
  private inFlight = 0;
  private readonly waiting: Waiter[] = [];

  constructor(private readonly opts: ConcurrencyGateOptions) {}

  get active(): number {
    return this.inFlight;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `work` once a slot is free; rejects with GateFull when none frees up in time. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.inFlight < this.opts.maxInFlight) {
      this.inFlight++;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.opts.maxWaiting) return Promise.reject(new GateFull('queue-full'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        // The slot passes straight from the releasing call to this one: inFlight does not change.
        start: () => {
          clearTimeout(waiter.timer);
          resolve();
        },
        timer: setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(waiter), 1);
          reject(new GateFull('wait-timeout'));
        }, this.opts.maxWaitMs),
      };
      this.waiting.push(waiter);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.start();
    else this.inFlight--;
  }
}
