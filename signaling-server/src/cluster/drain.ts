// Drains a node on SIGTERM so a rolling update is invisible to the rooms: stop taking traffic,
// send clients to other nodes in jittered waves, keep the signals addressed to them until they
// have resumed elsewhere, then exit, always within DRAIN_TIMEOUT_MS.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { RoomService } from '../rooms/room-service.js';
import type { SignalingServer } from '../transport/server.js';
import type { Heartbeat } from './heartbeat.js';

export interface DrainOptions {
  server: SignalingServer;
  rooms: RoomService;
  heartbeat: Heartbeat;
  metrics: Metrics;
  log: Logger;
  timeoutMs: number;
  spreadMs: number;
  jitterMs: number;
}

/** Resolves true when everything was handed over, false when the timeout cut it short. */
export async function drain(opts: DrainOptions): Promise<boolean> {
  const { server, rooms, heartbeat, metrics, log, timeoutMs } = opts;
  const started = performance.now();
  const left = () => timeoutMs - (performance.now() - started);
  metrics.draining.set(1);
  log.info({ connections: server.connectionCount, timeoutMs }, 'draining');
  void heartbeat.beat();

  const isDone = await withDeadline(left(), async () => {
    // Spread the waves over at most half the budget: the clients need the rest to resume.
    await server.drainConnections(Math.min(opts.spreadMs, timeoutMs / 2), opts.jitterMs);
    await rooms.settled();
    // Stay until the participants sent away have resumed elsewhere, so the signals addressed to
    // them meanwhile reach their new node. (Gaps of clients that dropped before the drain are not
    // waited for: nothing says they will come back.)
    while (rooms.gapsSince(started) > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  });
  if (!isDone) {
    log.warn({ connections: server.connectionCount, gaps: rooms.gapsSince(started) }, 'drain timeout reached');
    server.closeAll(1012, 'draining');
  }
  log.info({ ms: Math.round(performance.now() - started), isComplete: isDone }, 'drained');
  return isDone;
}

async function withDeadline(ms: number, work: () => Promise<void>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
  const result = await Promise.race([work().then(() => true), deadline]);
  clearTimeout(timer);
  return result;
}
