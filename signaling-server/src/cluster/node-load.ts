// Reports this node's open connections to Postgres every heartbeat period, so /v1/cluster on any
// node (and `signalctl status`) can show each node's load. A failed report is retried next period.
import type { Logger } from 'pino';
import type { ClusterReader } from '../store/cluster-reader.js';

export class NodeLoadReporter {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: { reader: ClusterReader; nodeId: string; intervalMs: number; connections: () => number; log: Logger },
  ) {}

  start(): void {
    const report = () =>
      this.opts.reader
        .reportLoad(this.opts.nodeId, this.opts.connections())
        .catch((err) => this.opts.log.debug({ err: String(err) }, 'load report failed'));
    void report();
    this.timer = setInterval(report, this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
