// Whether Postgres answers now, for the joins and leaves about to write to it. A database cut off
// without a FIN or an RST (a black-holed path, a paused VM) takes no query and fails none: each
// waits out DB_TIMEOUT_MS. The heartbeat finds out only when a beat of its own has waited that
// long, up to NODE_HEARTBEAT_MS + DB_TIMEOUT_MS after the cut, so a join in between would wait
// too. Asking the database itself with a short deadline bounds every join and leave instead.
import type { RoomStore } from './store.js';

export class DatabaseCheck {
  /** The ping in flight, shared by every caller meanwhile. */
  private ping: Promise<boolean> | null = null;

  constructor(
    private readonly store: Pick<RoomStore, 'ping' | 'lastAnsweredAt'>,
    private readonly deadlineMs: number,
  ) {}

  /**
   * True when the database answered within the deadline: the ping, or any other query answered
   * since the call (a pool busy with other work is not a database away). Callers share one ping,
   * so a burst of joins, or joins while the database hangs, add one query at a time, not one each.
   */
  async isUp(): Promise<boolean> {
    const asked = performance.now();
    this.ping ??= this.store.ping().then(
      () => true,
      () => false,
    );
    const ping = this.ping;
    void ping.finally(() => {
      if (this.ping === ping) this.ping = null;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.deadlineMs)));
    const isAnswered = await Promise.race([ping, late]).finally(() => clearTimeout(timer));
    return isAnswered || this.store.lastAnsweredAt() >= asked;
  }
}
