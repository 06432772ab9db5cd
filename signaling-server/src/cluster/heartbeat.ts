// Writes this node's heartbeat row every NODE_HEARTBEAT_MS. A node whose row goes stale is taken
// for dead by the reaper, and its participants are removed.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { RoomStore } from '../store/store.js';

export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: {
      store: RoomStore;
      nodeId: string;
      intervalMs: number;
      log: Logger;
      metrics: Metrics;
      isDraining: () => boolean;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.beat(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One heartbeat; true when the database took it. */
  async beat(): Promise<boolean> {
    try {
      await this.opts.store.heartbeat(this.opts.nodeId, this.opts.isDraining() ? 'draining' : 'up');
      this.opts.metrics.dbUp.set(1);
      return true;
    } catch (err) {
      this.opts.metrics.dbUp.set(0);
      this.opts.log.warn({ err: String(err) }, 'heartbeat failed');
      return false;
    }
  }
}
