// Per-address rate limits shared by every connection of one client address (see client-address.ts):
// bytes received, joins and state writes (each a database transaction under a room lock), and bytes
// that may go to the bus. An address keeps its buckets for a while after its last connection
// closes, so reconnecting does not refill them; idle entries are swept so the map stays bounded by
// the addresses seen in the last refill period.
import { TokenBucket, type Clock } from './token-bucket.js';

export interface Rate {
  perSec: number;
  burst: number;
}

export interface AddressRates {
  /** Bytes of every frame received from the address. */
  bytes: Rate;
  /** `join` and `state` requests. */
  writes: Rate;
  /** Bytes of `signal`, `broadcast` and `state` frames: what the address may push into the bus. */
  busBytes: Rate;
}

export class AddressBuckets {
  readonly bytes: TokenBucket;
  readonly writes: TokenBucket;
  readonly busBytes: TokenBucket;
  connections = 0;
  /** When the last connection closed (clock ms); meaningful only while connections is 0. */
  idleSince = 0;

  constructor(rates: AddressRates, now?: Clock) {
    this.bytes = new TokenBucket(rates.bytes.perSec, rates.bytes.burst, now);
    this.writes = new TokenBucket(rates.writes.perSec, rates.writes.burst, now);
    this.busBytes = new TokenBucket(rates.busBytes.perSec, rates.busBytes.burst, now);
  }
}

export class AddressRateLimits {
  private readonly byKey = new Map<string, AddressBuckets>();
  /** After this long without connections an address's buckets would be full again: forget it. */
  private readonly forgetAfterMs: number;

  constructor(
    private readonly rates: AddressRates,
    private readonly now: Clock = () => performance.now(),
  ) {
    const probe = new AddressBuckets(rates, now);
    this.forgetAfterMs = Math.max(probe.bytes.refillMs, probe.writes.refillMs, probe.busBytes.refillMs);
  }

  /** The buckets of an address, counting one more connection on it; pair with release(). */
  acquire(key: string): AddressBuckets {
    let buckets = this.byKey.get(key);
    if (!buckets) this.byKey.set(key, (buckets = new AddressBuckets(this.rates, this.now)));
    buckets.connections++;
    return buckets;
  }

  release(buckets: AddressBuckets): void {
    buckets.connections = Math.max(0, buckets.connections - 1);
    if (buckets.connections === 0) buckets.idleSince = this.now();
  }

  /** Forgets addresses without connections whose buckets have refilled; call now and then. */
  sweep(): void {
    const before = this.now() - this.forgetAfterMs;
    for (const [key, b] of this.byKey) if (b.connections === 0 && b.idleSince <= before) this.byKey.delete(key);
  }

  get size(): number {
    return this.byKey.size;
  }
}
