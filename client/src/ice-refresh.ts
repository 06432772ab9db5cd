// Renews each room's ICE servers before their TURN credentials expire: one timer per room, set
// from the `iceServersTtlMs` of the last `joined` or `ice-servers` reply. A failed renewal is tried
// again a little later while time is left; a re-join brings fresh servers and resets the timer.

/** Renew at this share of the lifetime, leaving the rest for a slow reply or a reconnect. */
const RENEW_AT = 0.8;
const RETRY_MS = 30_000;

interface Pending {
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class IceRefresher {
  /** The room's current renewal; replaced or removed, it tells a renewal in flight to stop. */
  private readonly pending = new Map<string, Pending>();

  /** `renew` asks the server again and, on success, calls `schedule` with the new lifetime. */
  constructor(private readonly renew: (room: string) => Promise<unknown>) {}

  /** (Re)starts the room's timer for credentials that last `ttlMs`; none when `ttlMs` is unknown. */
  schedule(room: string, ttlMs: number | undefined): void {
    this.cancel(room);
    if (ttlMs === undefined) return;
    const entry: Pending = { timer: undefined };
    this.pending.set(room, entry);
    this.arm(room, entry, ttlMs * RENEW_AT, Date.now() + ttlMs);
  }

  cancel(room: string): void {
    const entry = this.pending.get(room);
    if (entry?.timer !== undefined) clearTimeout(entry.timer);
    this.pending.delete(room);
  }

  cancelAll(): void {
    for (const room of [...this.pending.keys()]) this.cancel(room);
  }

  private arm(room: string, entry: Pending, delayMs: number, expiresAt: number): void {
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.renew(room).catch(() => {
        // Disconnected, timed out or refused: try again while the old credentials last. A
        // re-join reschedules anyway, and a room left meanwhile has been cancelled.
        const left = expiresAt - Date.now();
        if (this.pending.get(room) === entry && left > 0) this.arm(room, entry, Math.min(RETRY_MS, left / 2), expiresAt);
      });
    }, delayMs);
  }
}
