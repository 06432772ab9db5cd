// Counts open connections per client IP so one address cannot take every socket. An entry exists
// only while its count is above zero, so the map's size is bounded by live connections.

export class IpConnectionCounter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly maxPerIp: number) {
    if (!(maxPerIp >= 1)) throw new RangeError('maxPerIp must be >= 1');
  }

  /** Counts one more connection for `ip`, or returns false (and counts nothing) when it is at its limit. */
  tryAcquire(ip: string): boolean {
    const n = this.counts.get(ip) ?? 0;
    if (n >= this.maxPerIp) return false;
    this.counts.set(ip, n + 1);
    return true;
  }

  /** Releases one connection of `ip`; releasing an IP with nothing acquired is a no-op. */
  release(ip: string): void {
    const n = this.counts.get(ip);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(ip);
    else this.counts.set(ip, n - 1);
  }

  /** Open connections of one IP. */
  count(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }

  /** Number of IPs with at least one open connection. */
  size(): number {
    return this.counts.size;
  }
}
