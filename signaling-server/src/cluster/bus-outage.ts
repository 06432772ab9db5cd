// Moves the clients of a node that cannot reach the bus. Such a node can deliver nothing across
// the cluster and answers every send `unavailable`; its clients are better off on another node,
// where they resume with the same ids (peers see nothing) and read back from the room logs what
// they missed. Once the bus has been down for BUS_DOWN_RECONNECT_MS, and some other node says in a
// heartbeat since the outage began that it can reach the bus, every client is told `reconnect`
// and the node refuses new ones until its bus is back. When no other node can reach the bus either
// (Redis is away for everyone), clients stay: moving them would only make them churn.
import type { Logger } from 'pino';
import type { RoomStore } from '../store/store.js';

export interface BusOutageOptions {
  nodeId: string;
  store: Pick<RoomStore, 'hasPeerWithBus'>;
  isBusUp: () => boolean;
  /** How long the bus must have been down before the clients are moved. */
  thresholdMs: number;
  /** How often the bus is looked at (and, past the threshold, the other nodes asked). */
  checkMs: number;
  /**
   * How long another node may take to notice its own bus is down (its probe's bound): a heartbeat
   * that says "up" counts only if it came this long after this outage began, or a Redis away for
   * every node could look reachable from one that has not noticed yet.
   */
  peerNoticeMs: number;
  log: Logger;
  /** The outage passed the threshold and another node can take the clients: send them there. */
  onMove: () => void;
  /** The bus is back after onMove(): take clients again. */
  onBack: () => void;
}

export class BusOutage {
  private timer: NodeJS.Timeout | null = null;
  /** When the bus was first seen down in this outage; null while it is up. */
  private downSince: number | null = null;
  private isMoved = false;
  private isChecking = false;

  constructor(private readonly opts: BusOutageOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.opts.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** True from onMove() until the bus is back. */
  get isMovingClients(): boolean {
    return this.isMoved;
  }

  private async check(): Promise<void> {
    if (this.isChecking) return;
    const now = performance.now();
    if (this.opts.isBusUp()) {
      if (this.isMoved) {
        this.opts.log.info({ ms: Math.round(now - this.downSince!) }, 'the bus is back: taking clients again');
        this.opts.onBack();
      }
      this.downSince = null;
      this.isMoved = false;
      return;
    }
    this.downSince ??= now;
    const downMs = now - this.downSince;
    if (this.isMoved || downMs < this.opts.thresholdMs) return;
    this.isChecking = true;
    try {
      // A node that beat since the outage began (and had time to notice it), saying it reaches the
      // bus: somewhere to go. Until one has, this is asked again at every check.
      const withinMs = downMs - this.opts.peerNoticeMs;
      const hasPeer =
        withinMs > 0 && (await this.opts.store.hasPeerWithBus(this.opts.nodeId, Math.floor(withinMs)).catch(() => false));
      if (!hasPeer || this.opts.isBusUp() || this.isMoved) return;
      this.isMoved = true;
      this.opts.log.warn(
        { ms: Math.round(downMs) },
        'the bus has been unreachable past BUS_DOWN_RECONNECT_MS: sending clients to other nodes',
      );
      this.opts.onMove();
    } finally {
      this.isChecking = false;
    }
  }
}
