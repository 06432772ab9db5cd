// Keeps the database from growing without end: old room events, rooms unused for a while and nodes
// long dead are deleted. One node at a time does it, the holder of the `retention` lease, in small
// batches (store/retention-store.ts) with a bounded number per round, so a backlog is worked off
// over several rounds instead of in one long transaction.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { PruneStore } from '../store/retention-store.js';
import type { RoomStore } from '../store/store.js';

export const RETENTION_LEASE = 'retention';
/** Batches per table per round; what is left waits for the next round. */
const MAX_BATCHES_PER_ROUND = 20;

export interface RetentionOptions {
  /** For the lease. */
  store: RoomStore;
  pruner: PruneStore;
  nodeId: string;
  intervalMs: number;
  eventRetentionMs: number;
  roomRetentionMs: number;
  nodeRetentionMs: number;
  batchSize: number;
  log: Logger;
  metrics: Metrics;
}

export interface Pruned {
  room_events: number;
  rooms: number;
  nodes: number;
}

export class Retention {
  private timer: NodeJS.Timeout | null = null;
  private isRunning = false;
  private isLeader = false;

  constructor(private readonly opts: RetentionOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round: take or renew the lease, then prune each table. Returns the rows deleted. */
  async tick(): Promise<Pruned> {
    const pruned: Pruned = { room_events: 0, rooms: 0, nodes: 0 };
    if (this.isRunning) return pruned;
    this.isRunning = true;
    const { store, pruner, nodeId, intervalMs, log } = this.opts;
    try {
      // Valid for two rounds: a slow round does not lose it, a dead holder's lapses soon enough.
      const isLeader = await store.acquireLease(RETENTION_LEASE, nodeId, 2 * intervalMs);
      if (isLeader !== this.isLeader) log.info({ isLeader }, isLeader ? 'leading retention' : 'no longer leading retention');
      this.isLeader = isLeader;
      if (!isLeader) return pruned;
      // Events first: a room's last event tells whether it is still in use.
      pruned.room_events = await this.inBatches('room_events', (n) => pruner.pruneEvents(this.opts.eventRetentionMs, n));
      pruned.rooms = await this.inBatches('rooms', (n) => pruner.pruneRooms(this.opts.roomRetentionMs, n));
      pruned.nodes = await this.inBatches('nodes', (n) => pruner.pruneNodes(this.opts.nodeRetentionMs, n));
      if (pruned.room_events + pruned.rooms + pruned.nodes > 0) log.info({ pruned }, 'pruned old rows');
    } catch (err) {
      this.opts.metrics.backgroundErrors.labels('retention').inc();
      log.warn({ err, pruned }, 'retention round failed');
    } finally {
      this.isRunning = false;
    }
    return pruned;
  }

  private async inBatches(table: keyof Pruned, prune: (limit: number) => Promise<number>): Promise<number> {
    const { batchSize, metrics } = this.opts;
    let total = 0;
    for (let i = 0; i < MAX_BATCHES_PER_ROUND; i++) {
      const n = await prune(batchSize);
      total += n;
      metrics.pruned.labels(table).inc(n);
      if (n < batchSize) break;
    }
    return total;
  }
}
