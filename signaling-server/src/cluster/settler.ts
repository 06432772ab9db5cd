// Settles joins and leaves whose COMMIT outcome is unknown (the COMMIT timed out or its connection
// died), and those rolled back because their event's publish failed after it was sent (no reply in
// time: Redis may run it later). Their event went out, or may still, so peers may see `peer-joined`
// or `peer-left` for a change that did not happen. A join is retracted (removed if it did commit; in any
// case a `peer-left` with a fresh seq, since its joiner was told `unavailable`); a leave is redone
// (a no-op if it did commit). Retried until the database takes it.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Departure, RoomStore, UnsettledChange } from '../store/store.js';

export interface SettlerOptions {
  store: RoomStore;
  announce: (d: Departure) => Promise<unknown>;
  log: Logger;
  metrics: Metrics;
  retryMs: number;
}

export class Settler {
  private readonly pending = new Map<string, Promise<void>>();
  private isStopped = false;

  constructor(private readonly opts: SettlerOptions) {}

  /** Takes a change to settle; the same change reported again while it is being settled is ignored. */
  settle(change: UnsettledChange): void {
    const key = `${change.op}|${change.room}|${change.participantId}`;
    if (this.pending.has(key) || this.isStopped) return;
    this.opts.metrics.unsettledCommits.labels(change.op).inc();
    this.opts.log.warn(
      { room: change.room, participant: change.participantId, op: change.op },
      'commit outcome unknown: settling it',
    );
    const done = this.attempt(change).finally(() => this.pending.delete(key));
    this.pending.set(key, done);
  }

  /** Resolves once every change taken so far is settled (or the settler stopped). */
  async settled(): Promise<void> {
    await Promise.all(this.pending.values());
  }

  stop(): void {
    this.isStopped = true;
  }

  private async attempt(change: UnsettledChange): Promise<void> {
    const { store, announce, log, metrics, retryMs } = this.opts;
    const m = { room: change.room, participantId: change.participantId };
    while (!this.isStopped) {
      try {
        const departure =
          change.op === 'join'
            ? await store.retractJoin(m, change.nodeId, announce)
            : await store.leave(m, change.nodeId, announce);
        log.info(
          { ...m, participant: m.participantId, op: change.op, announced: departure !== null },
          'settled a change whose commit outcome was unknown',
        );
        return;
      } catch (err) {
        metrics.backgroundErrors.labels('settle').inc();
        log.warn({ err, room: m.room, participant: m.participantId, op: change.op }, 'could not settle a change yet; retrying');
        await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
      }
    }
  }
}
