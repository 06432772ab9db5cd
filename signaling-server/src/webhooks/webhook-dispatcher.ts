// Delivers the webhook outbox. One node at a time holds the `webhooks` lease (like the reaper's)
// and delivers; the others only try to take it. Per endpoint and room the oldest event goes first
// and the next waits until it is accepted or dropped, so each room's events arrive in order. A
// failed attempt is retried with exponential backoff until the event is older than the maximum
// age, then dropped and counted. An event is deleted only after a 2xx: a holder that dies between
// the receiver's 2xx and the delete leaves it to the next holder, which sends it again with the
// same webhook-id (receivers deduplicate on it).
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Database } from '../store/schema.js';
import type { RoomStore } from '../store/store.js';
import { signWebhook } from './signature.js';

export interface WebhookDispatcherOptions {
  db: Kysely<Database>;
  store: Pick<RoomStore, 'acquireLease'>;
  nodeId: string;
  /** Key bytes of WEBHOOK_SECRET. */
  key: Buffer;
  timeoutMs: number;
  maxAgeMs: number;
  /** First retry delay; doubles each attempt up to MAX_BACKOFF_MS. */
  retryMs: number;
  /** How often a node tries the lease and looks for due events. */
  intervalMs: number;
  metrics: Metrics;
  log: Logger;
}

interface Head {
  id: string;
  endpoint: string;
  room: string;
  event_id: string;
  type: string;
  body: string;
  attempts: number;
  is_due: boolean;
  is_expired: boolean;
}

const LEASE = 'webhooks';
const MAX_BACKOFF_MS = 60_000;
/** Heads looked at per round: at most one per endpoint and room. */
const ROUND_SIZE = 100;

export class WebhookDispatcher {
  private timer: NodeJS.Timeout | null = null;
  private isRunning = false;
  private isLeader = false;
  /** Longer than a round can take (every request is bounded by timeoutMs), so a live holder never loses it mid-round. */
  private readonly leaseMs: number;

  constructor(private readonly opts: WebhookDispatcherOptions) {
    this.leaseMs = 2 * opts.timeoutMs + 4 * opts.intervalMs;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One turn: take or renew the lease, then deliver rounds while events are due. */
  async tick(): Promise<void> {
    if (this.isRunning) return;
    this.isRunning = true;
    try {
      const isLeader = await this.opts.store.acquireLease(LEASE, this.opts.nodeId, this.leaseMs);
      if (isLeader !== this.isLeader)
        this.opts.log.info({ isLeader }, isLeader ? 'delivering webhooks' : 'no longer delivering webhooks');
      this.isLeader = isLeader;
      if (!isLeader) {
        this.opts.metrics.webhookQueueDepth.set(0);
        this.opts.metrics.webhookOldestSeconds.set(0);
        return;
      }
      const started = performance.now();
      // Keep going while rounds deliver something, within the lease (renewed each turn).
      while ((await this.round()) && performance.now() - started < this.leaseMs / 4) {
        /* next round */
      }
      await this.observeQueue();
    } catch (err) {
      this.opts.metrics.backgroundErrors.labels('webhooks').inc();
      this.opts.log.warn({ err }, 'webhook round failed');
    } finally {
      this.isRunning = false;
    }
  }

  /** Delivers the due head of each endpoint and room once; true when any was accepted or dropped. */
  private async round(): Promise<boolean> {
    // Ordered by the bigint id: the text form (kept for the driver) would put "10" before "9".
    const { rows: heads } = await sql<Head>`
      SELECT heads.id::text AS id, endpoint, room, event_id, type, body, attempts, is_due, is_expired FROM (
        SELECT DISTINCT ON (endpoint, room) id, endpoint, room, event_id, type, body, attempts,
               next_attempt_at <= now() AS is_due,
               created_at < now() - make_interval(secs => ${this.opts.maxAgeMs / 1000}::float8) AS is_expired
        FROM webhook_outbox ORDER BY endpoint, room, id
      ) heads WHERE is_due OR is_expired ORDER BY heads.id LIMIT ${ROUND_SIZE}
    `.execute(this.opts.db);
    const results = await Promise.all(heads.map((head) => this.handle(head)));
    return results.some((done) => done);
  }

  private async handle(head: Head): Promise<boolean> {
    const { metrics, log } = this.opts;
    if (head.is_expired) {
      await this.opts.db.deleteFrom('webhook_outbox').where('id', '=', head.id).execute();
      metrics.webhookDropped.inc();
      metrics.dropped.labels('webhook-expired').inc();
      log.warn({ eventId: head.event_id, type: head.type, room: head.room, attempts: head.attempts }, 'webhook dropped: too old');
      return true;
    }
    const error = await this.post(head);
    if (error === null) {
      await this.opts.db.deleteFrom('webhook_outbox').where('id', '=', head.id).execute();
      metrics.webhookDeliveries.labels('delivered').inc();
      return true;
    }
    metrics.webhookDeliveries.labels('failed').inc();
    const backoffMs = Math.min(MAX_BACKOFF_MS, this.opts.retryMs * 2 ** head.attempts);
    log.warn(
      { eventId: head.event_id, type: head.type, room: head.room, attempt: head.attempts + 1, error, backoffMs },
      'webhook delivery failed',
    );
    await this.opts.db
      .updateTable('webhook_outbox')
      .set({
        attempts: sql`attempts + 1`,
        last_error: error.slice(0, 500),
        next_attempt_at: sql`now() + make_interval(secs => ${backoffMs / 1000}::float8)`,
      })
      .where('id', '=', head.id)
      .execute();
    return false;
  }

  /** Null when the endpoint accepted the event (2xx), else what went wrong. */
  private async post(head: Head): Promise<string | null> {
    const headers = signWebhook(this.opts.key, head.event_id, Math.floor(Date.now() / 1000), head.body);
    try {
      const res = await fetch(head.endpoint, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'user-agent': 'signaling-cluster-webhooks' },
        body: head.body,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
        redirect: 'error',
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? null : `HTTP ${res.status}`;
    } catch (err) {
      return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
  }

  private async observeQueue(): Promise<void> {
    const row = await this.opts.db
      .selectFrom('webhook_outbox')
      .select([
        sql<number>`count(*)::int`.as('depth'),
        sql<number | null>`extract(epoch from now() - min(created_at))::float8`.as('age'),
      ])
      .executeTakeFirstOrThrow();
    this.opts.metrics.webhookQueueDepth.set(row.depth);
    this.opts.metrics.webhookOldestSeconds.set(row.age ?? 0);
  }
}
