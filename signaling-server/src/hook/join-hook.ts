// The client of the application's join hook (JOIN_HOOK_URL): one signed POST per join, resume or
// re-check, answered with allow or deny. It never retries: a request whose answer was lost may
// have been acted on by the backend, and the client can retry the join itself (it gets
// `unavailable`). A circuit breaker and a bounded gate keep a slow or dead backend from holding
// every join of the node behind it. What an answer means for a participant is auth/access.ts's.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import { GRANTS, type Grant } from '../auth/token-verifier.js';
import type { Metrics } from '../metrics.js';
import { MAX_NAME_CHARS } from '../protocol/messages.js';
import { StorableObject, storableString } from '../protocol/storable.js';
import { signWebhook } from '../webhooks/signature.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { ConcurrencyGate, GateFull } from './concurrency-gate.js';

export type HookPurpose = 'join' | 'resume' | 'recheck';

/** The body the backend receives (docs/security.md, "Join hook"). */
export interface HookRequest {
  type: HookPurpose;
  room: string;
  /** On a resume, the participant its resume token names (not yet checked); on a re-check, the participant. */
  participant: string | null;
  name: string | null;
  meta: Record<string, unknown>;
  /** The client's address as the limits see it (behind TRUSTED_PROXIES, the one they name). */
  address: string;
  /** The join's token (or the connection's), as sent, when there is one. */
  token: string | null;
  /** The verified claims of that token, when tokens are on. */
  claims: { sub: string; room: string; name?: string; grants: Grant[]; exp: number } | null;
  /** The upgrade request's cookies and the headers JOIN_HOOK_HEADERS names. */
  cookies: Record<string, string>;
  headers: Record<string, string>;
}

/**
 * The answer the backend must give with a 2xx status. `sub`, `name` and `meta` go to Postgres:
 * what it could not store is a malformed answer, as the same in a client's join is a bad request.
 */
export const HookAnswer = z.discriminatedUnion('allow', [
  z.object({
    allow: z.literal(true),
    sub: storableString(z.string().min(1).max(256)).optional(),
    grants: z.array(z.enum(GRANTS)).max(GRANTS.length).optional(),
    name: storableString(z.string().max(MAX_NAME_CHARS)).optional(),
    meta: StorableObject.optional(),
    /** Ask again after this many seconds; a participant then denied is removed. */
    recheckAfterSec: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .optional(),
  }),
  z.object({
    allow: z.literal(false),
    /** The protocol code the client gets; `forbidden` unless the backend says `unauthorized`. */
    code: z.enum(['forbidden', 'unauthorized']).optional(),
    reason: z.string().max(256).optional(),
  }),
]);
export type HookAnswer = z.infer<typeof HookAnswer>;
export type HookAllow = Extract<HookAnswer, { allow: true }>;

export type HookFailure = 'timeout' | 'error' | 'malformed' | 'breaker-open' | 'queue-full' | 'wait-timeout';

export type HookVerdict =
  | { kind: 'allow'; answer: HookAllow }
  | { kind: 'deny'; code: 'forbidden' | 'unauthorized'; reason: string }
  | { kind: 'failed'; failure: HookFailure };

export interface JoinHookOptions {
  url: string;
  /** The Standard Webhooks key (JOIN_HOOK_SECRET's bytes). */
  key: Buffer;
  timeoutMs: number;
  maxInFlight: number;
  maxWaiting: number;
  breakerFailures: number;
  breakerCoolDownMs: number;
  /** An answer's meta larger than this (as JSON) is malformed, as a client's would be refused. */
  maxMetaBytes: number;
  metrics: Metrics;
  log: Logger;
}

/** Answers larger than this are malformed; a real answer is a few hundred bytes. */
const MAX_ANSWER_BYTES = 64 * 1024;
const BREAKER_GAUGE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export class JoinHook {
  private readonly breaker: CircuitBreaker;
  private readonly gate: ConcurrencyGate;

  constructor(private readonly opts: JoinHookOptions) {
    const { metrics, log } = opts;
    metrics.joinHookBreakerState.set(0);
    this.breaker = new CircuitBreaker({
      failureThreshold: opts.breakerFailures,
      coolDownMs: opts.breakerCoolDownMs,
      onStateChange: (state) => {
        metrics.joinHookBreakerState.set(BREAKER_GAUGE[state]);
        if (state === 'open') log.warn({ coolDownMs: opts.breakerCoolDownMs }, 'join hook failing: circuit breaker open');
        else log.info({ state }, 'join hook circuit breaker state changed');
      },
    });
    // A join waits for a slot at most as long as the request itself may take.
    this.gate = new ConcurrencyGate({ maxInFlight: opts.maxInFlight, maxWaiting: opts.maxWaiting, maxWaitMs: opts.timeoutMs });
  }

  /** Asks the backend; never throws. */
  async ask(request: HookRequest): Promise<HookVerdict> {
    const { metrics } = this.opts;
    if (!this.breaker.tryAcquire()) return this.rejected('breaker-open');
    try {
      return await this.gate.run(() => this.send(request));
    } catch (err) {
      // The gate refused: no request went out, so the breaker learnt nothing.
      this.breaker.abandon();
      if (err instanceof GateFull) return this.rejected(err.reason);
      throw err;
    } finally {
      metrics.joinHookInFlight.labels('sending').set(this.gate.active);
      metrics.joinHookInFlight.labels('waiting').set(this.gate.queued);
    }
  }

  get breakerState(): BreakerState {
    return this.breaker.state;
  }

  private rejected(reason: 'breaker-open' | 'queue-full' | 'wait-timeout'): HookVerdict {
    this.opts.metrics.joinHookRejected.labels(reason).inc();
    return { kind: 'failed', failure: reason };
  }

  private async send(request: HookRequest): Promise<HookVerdict> {
    const { metrics, log } = this.opts;
    metrics.joinHookInFlight.labels('sending').set(this.gate.active);
    metrics.joinHookInFlight.labels('waiting').set(this.gate.queued);
    const started = performance.now();
    const verdict = await this.post(request);
    metrics.joinHookSeconds.observe((performance.now() - started) / 1000);
    const outcome = verdict.kind === 'failed' ? verdict.failure : verdict.kind;
    metrics.joinHookRequests.labels(outcome).inc();
    if (verdict.kind === 'failed') {
      this.breaker.onFailure();
      // The room only: the body holds the token, cookies and headers.
      log.warn({ room: request.room, purpose: request.type, outcome }, 'join hook request failed');
    } else {
      this.breaker.onSuccess();
    }
    return verdict;
  }

  private async post(request: HookRequest): Promise<HookVerdict> {
    const body = JSON.stringify(request);
    const id = `hook_${randomBytes(12).toString('hex')}`;
    const headers = {
      'content-type': 'application/json',
      ...signWebhook(this.opts.key, id, Math.floor(Date.now() / 1000), body),
    };
    let text: string;
    try {
      const res = await fetch(this.opts.url, {
        method: 'POST',
        headers,
        body,
        // A redirect would send the signed body where nobody configured it to go.
        redirect: 'error',
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      if (res.status < 200 || res.status > 299) {
        await res.body?.cancel();
        return { kind: 'failed', failure: 'error' };
      }
      const read = await readBounded(res, MAX_ANSWER_BYTES);
      if (read === null) return { kind: 'failed', failure: 'malformed' };
      text = read;
    } catch (err) {
      const isTimeout = err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError');
      return { kind: 'failed', failure: isTimeout ? 'timeout' : 'error' };
    }
    let parsed;
    try {
      parsed = HookAnswer.safeParse(JSON.parse(text));
    } catch {
      return { kind: 'failed', failure: 'malformed' };
    }
    if (!parsed.success) return { kind: 'failed', failure: 'malformed' };
    const answer = parsed.data;
    if (!answer.allow)
      return { kind: 'deny', code: answer.code ?? 'forbidden', reason: answer.reason ?? 'denied by the join hook' };
    if (answer.meta && Buffer.byteLength(JSON.stringify(answer.meta)) > this.opts.maxMetaBytes) {
      return { kind: 'failed', failure: 'malformed' };
    }
    return { kind: 'allow', answer };
  }
}

/** The response body as text, or null when it is longer than `limit` bytes. */
async function readBounded(res: Response, limit: number): Promise<string | null> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
