// Removes participants nobody holds any more: those whose grace period ran out and those of nodes
// that stopped heartbeating (kill -9, a lost machine). One node at a time runs it, the holder of
// a lease in the database; any node takes over within a heartbeat period when the holder dies.
// A round goes room by room: a room that fails (its lock held by a frozen session, its event not
// published) is logged, counted and found again next round, and the others still go.
// A node whose database heartbeat is stale but which still beats through Redis (cut off from
// Postgres alone) is alive: it keeps its participants. One silent in both is dead. When the
// reaper cannot read the Redis beats, the database's word stands, as before there were two.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { NodeBeats } from '../bus/node-beats.js';
import type { Departure, OnRoomFailure, RoomStore } from '../store/store.js';

export const REAPER_LEASE = 'reaper';

export interface ReaperOptions {
  store: RoomStore;
  nodeId: string;
  heartbeatMs: number;
  log: Logger;
  metrics: Metrics;
  announce: (d: Departure) => Promise<unknown>;
  /** The heartbeats through Redis; absent without Redis. */
  beats?: Pick<NodeBeats, 'aliveWithin'>;
}

export class Reaper {
  private timer: NodeJS.Timeout | null = null;
  private isRunning = false;
  private isLeader = false;
  /**
   * When the database last failed us or stalled (a write that took a quarter of a heartbeat
   * period: a synchronous standby gone, a lock, a disk that stopped). Nodes cannot heartbeat
   * through either, and a beat held up that way lands with the time it was sent.
   */
  private lastFailureAt = -Infinity;

  constructor(private readonly opts: ReaperOptions) {}

  start(): void {
    // Ticking at half the heartbeat keeps detection (2 missed periods + a tick) under 3 periods.
    this.timer = setInterval(() => void this.tick(), Math.max(50, this.opts.heartbeatMs / 2));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round: renew or take the lease, then reap. Returns what was removed. */
  async tick(): Promise<Departure[]> {
    if (this.isRunning) return [];
    this.isRunning = true;
    const { store, nodeId, heartbeatMs, log } = this.opts;
    try {
      const leaseSentAt = performance.now();
      const isLeader = await store.acquireLease(REAPER_LEASE, nodeId, heartbeatMs);
      const leaseMs = performance.now() - leaseSentAt;
      // Undetected, a stall just shorter than the tick plus this bound leaves a beat 1.75 periods old.
      if (leaseMs > heartbeatMs / 4) this.noteStall(leaseMs);
      if (isLeader !== this.isLeader) log.info({ isLeader }, isLeader ? 'leading the reaper' : 'no longer leading the reaper');
      this.isLeader = isLeader;
      if (!isLeader) return [];
      // Right after an outage or a stall every node's heartbeat looks stale. Judge nodes dead only
      // once they have all had two periods to beat again; expired grace periods are reaped meanwhile.
      const deadAfterMs = performance.now() - this.lastFailureAt < 2 * heartbeatMs ? null : 2 * heartbeatMs;
      const spared = deadAfterMs === null ? [] : await this.aliveThroughBus(deadAfterMs);
      const departures = await store.reap(deadAfterMs, this.opts.announce, this.roomFailed, spared);
      this.record(departures, 'reaped');
      return departures;
    } catch (err) {
      this.lastFailureAt = performance.now();
      this.opts.metrics.backgroundErrors.labels('reaper-round').inc();
      log.warn({ err }, 'reaper round failed');
      return [];
    } finally {
      this.isRunning = false;
    }
  }

  /** A node is known to be gone (its pod was deleted): free its participants now, if leading. */
  async evictNode(goneNodeId: string): Promise<Departure[]> {
    if (!this.isLeader || goneNodeId === this.opts.nodeId) return [];
    try {
      const departures = await this.opts.store.evictNode(goneNodeId, this.opts.announce, this.roomFailed);
      this.record(departures, 'evicted');
      return departures;
    } catch (err) {
      // What is left of it goes with the heartbeat expiry.
      this.opts.metrics.backgroundErrors.labels('evict-node').inc();
      this.opts.log.warn({ err, goneNode: goneNodeId }, 'could not evict a gone node');
      return [];
    }
  }

  /** The nodes that beat through Redis within the period; none when Redis cannot say. */
  private async aliveThroughBus(withinMs: number): Promise<string[]> {
    if (!this.opts.beats) return [];
    try {
      return await this.opts.beats.aliveWithin(withinMs);
    } catch (err) {
      this.opts.metrics.backgroundErrors.labels('bus-heartbeat').inc();
      this.opts.log.debug({ err }, 'could not read the heartbeats through redis');
      return [];
    }
  }

  private noteStall(ms: number): void {
    if (performance.now() - this.lastFailureAt >= 2 * this.opts.heartbeatMs) {
      this.opts.log.warn(
        { stalledMs: Math.round(ms) },
        'the database stalled: judging no node dead until all have had two heartbeat periods to beat',
      );
    }
    this.lastFailureAt = performance.now();
  }

  private readonly roomFailed: OnRoomFailure = (room, err) => {
    this.opts.metrics.backgroundErrors.labels('reaper-room').inc();
    this.opts.log.warn({ err, room }, 'could not remove the participants of a room this round; carrying on with the others');
  };

  private record(departures: Departure[], what: string): void {
    for (const d of departures) {
      this.opts.metrics.reaped.labels(d.reason).inc();
      this.opts.log.info({ room: d.room, participant: d.participantId, reason: d.reason }, `participant ${what}`);
    }
  }
}
