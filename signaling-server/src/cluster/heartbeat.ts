// Writes this node's heartbeat row every NODE_HEARTBEAT_MS, on a database connection of its own. A
// node whose row goes stale is taken for dead by the reaper, and its participants are removed. A
// heartbeat never revives a row the reaper marked dead: the node learns it was judged dead, lets its
// clients go (close 1012: they reconnect and re-join) and registers again, rather than serving
// participants the rest of the cluster has already seen leave. With `beats` the node also beats
// through Redis, on a timer of its own so a Postgres that hangs does not hold that beat up: the
// reaper judges a node dead only when both have gone quiet.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { NodeBeats } from '../bus/node-beats.js';
import type { RoomStore } from '../store/store.js';

export interface HeartbeatOptions {
  store: RoomStore;
  nodeId: string;
  intervalMs: number;
  log: Logger;
  metrics: Metrics;
  isDraining: () => boolean;
  /** Whether the bus is reachable now: written with each heartbeat for the other nodes (bus-outage.ts). */
  isBusUp?: () => boolean;
  /** The second heartbeat, through Redis; absent without Redis. */
  beats?: NodeBeats;
  /** Lets every client of this node go; called when the node finds it was judged dead. */
  onJudgedDead: () => void;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  private busTimer: NodeJS.Timeout | null = null;
  private isBeating = false;
  private isBusBeating = false;

  constructor(private readonly opts: HeartbeatOptions) {}

  /** Writes this node's row as alive whatever it said before (at start). */
  async register(): Promise<void> {
    await this.opts.store.registerNode(this.opts.nodeId, this.status());
  }

  start(): void {
    this.timer = setInterval(() => {
      // A heartbeat stuck on the database must not pile up others behind it.
      if (!this.isBeating) void this.beat();
    }, this.opts.intervalMs);
    this.timer.unref();
    if (this.opts.beats) {
      void this.beatThroughBus();
      this.busTimer = setInterval(() => void this.beatThroughBus(), this.opts.intervalMs);
      this.busTimer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.busTimer) clearInterval(this.busTimer);
    this.timer = null;
    this.busTimer = null;
  }

  private async beatThroughBus(): Promise<void> {
    if (this.isBusBeating || this.opts.isDraining()) return;
    this.isBusBeating = true;
    try {
      await this.opts.beats!.beat(this.opts.nodeId);
    } catch (err) {
      // The bus being away is reported by signaling_bus_up; this only counts the missed beats.
      this.opts.metrics.backgroundErrors.labels('bus-heartbeat').inc();
      this.opts.log.debug({ err }, 'could not beat through redis');
    } finally {
      this.isBusBeating = false;
    }
  }

  /** One heartbeat; true when the database took it. */
  async beat(): Promise<boolean> {
    const { store, nodeId, log, metrics } = this.opts;
    this.isBeating = true;
    try {
      const result = await store.heartbeat(nodeId, this.status(), this.opts.isBusUp?.() ?? true);
      metrics.dbUp.set(1);
      if (result === 'judged-dead') {
        metrics.judgedDead.inc();
        log.warn('the cluster judged this node dead while it was alive: closing its connections and registering again');
        this.opts.onJudgedDead();
        await this.register();
      }
      return true;
    } catch (err) {
      metrics.dbUp.set(0);
      metrics.backgroundErrors.labels('heartbeat').inc();
      log.warn({ err }, 'heartbeat failed');
      return false;
    } finally {
      this.isBeating = false;
    }
  }

  private status(): 'up' | 'draining' {
    return this.opts.isDraining() ? 'draining' : 'up';
  }
}
