// Asks the join hook again about participants whose answer named a re-check time
// (`recheckAfterSec`), on the node that holds them: one still allowed keeps its place (with the
// grants of the new answer), one denied is removed as an operator's kick would remove it, with the
// hook's reason in its `kicked`. A re-check the hook could not answer keeps the participant and
// tries again: a backend outage must not empty every room.
import type { Logger } from 'pino';
import { hookAccess } from '../auth/access.js';
import type { TokenClaims } from '../auth/token-verifier.js';
import type { HookRequest, JoinHook } from '../hook/join-hook.js';
import type { Metrics } from '../metrics.js';
import type { LocalMember } from './session.js';

/** Removes a participant cluster-wide with a reason its client sees (RoomAdmin does). */
export interface ParticipantRemover {
  removeParticipant(room: string, participantId: string, reason?: string): Promise<boolean>;
}

export interface AccessRechecksOptions {
  hook: JoinHook;
  remover: ParticipantRemover;
  metrics: Metrics;
  log: Logger;
}

/** How soon a re-check the hook could not answer is tried again, at most. */
const MAX_RETRY_MS = 60_000;

export class AccessRechecks {
  private readonly timers = new Map<LocalMember, NodeJS.Timeout>();
  /** After close(), a re-check still in flight schedules no next one. */
  private isClosed = false;

  constructor(private readonly opts: AccessRechecksOptions) {}

  /** Asks again at `at` (ms since the epoch; at once when past) with the request the member joined with. */
  schedule(member: LocalMember, at: number, request: HookRequest): void {
    this.cancel(member);
    if (this.isClosed) return;
    const delayMs = Math.max(0, at - Date.now());
    const timer = setTimeout(() => {
      this.timers.delete(member);
      this.countPending();
      this.recheck(member, request, Math.max(1000, delayMs)).catch((err: unknown) => {
        // A bug, not an outage: the participant keeps its place until it leaves. The request
        // holds the token and cookies, so only where it happened is logged.
        this.opts.metrics.backgroundErrors.labels('join-hook-recheck').inc();
        this.opts.log.error({ err, room: member.room, participant: member.id }, 'join hook re-check failed');
      });
    }, delayMs);
    timer.unref();
    this.timers.set(member, timer);
    this.countPending();
  }

  /** The member left or went away: a resume schedules it again from what the store holds. */
  cancel(member: LocalMember): void {
    const timer = this.timers.get(member);
    if (!timer) return;
    clearTimeout(timer);
    this.timers.delete(member);
    this.countPending();
  }

  /** Re-checks waiting for their time. */
  get pendingCount(): number {
    return this.timers.size;
  }

  close(): void {
    this.isClosed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.countPending();
  }

  private countPending(): void {
    this.opts.metrics.joinHookRechecksPending.set(this.timers.size);
  }

  private async recheck(member: LocalMember, joinedWith: HookRequest, lastDelayMs: number): Promise<void> {
    if (member.status !== 'joined' || member.session.isClosed) return;
    const { hook, metrics } = this.opts;
    const request: HookRequest = { ...joinedWith, type: 'recheck', participant: member.id };
    const verdict = await hook.ask(request);
    const decided = metrics.joinHookDecisions;
    if (member.status !== 'joined' || member.session.isClosed) return;
    switch (verdict.kind) {
      case 'allow': {
        const claims = claimsOf(request);
        // A participant stays who it joined as: an answer naming someone else is a deny.
        const sub = verdict.answer.sub;
        const isSomeoneElse = sub !== undefined && sub !== (claims?.sub ?? member.identity);
        if (isSomeoneElse) {
          await this.remove(member, 'the join hook named another identity', joinedWith, lastDelayMs);
          return;
        }
        const access = hookAccess(verdict.answer, claims);
        member.grants = access.grants;
        decided.labels('recheck', 'kept').inc();
        if (access.recheckAt !== null) this.schedule(member, access.recheckAt, joinedWith);
        return;
      }
      case 'deny':
        await this.remove(member, verdict.reason, joinedWith, lastDelayMs);
        return;
      case 'failed':
        decided.labels('recheck', 'failed').inc();
        this.schedule(member, Date.now() + Math.min(lastDelayMs, MAX_RETRY_MS), joinedWith);
    }
  }

  private async remove(member: LocalMember, reason: string, joinedWith: HookRequest, lastDelayMs: number): Promise<void> {
    const { remover, metrics, log } = this.opts;
    metrics.joinHookDecisions.labels('recheck', 'removed').inc();
    try {
      await remover.removeParticipant(member.room, member.id, reason);
      log.info({ room: member.room, participant: member.id }, 'participant removed: the join hook denied it on re-check');
    } catch (err) {
      // The database or the bus is away: try the hook (and the removal) again later.
      metrics.backgroundErrors.labels('join-hook-recheck').inc();
      log.warn({ err, room: member.room, participant: member.id }, 'could not remove a participant the join hook denied');
      this.schedule(member, Date.now() + Math.min(lastDelayMs, MAX_RETRY_MS), joinedWith);
    }
  }
}

/** The token claims a request carried, for narrowing the new answer's grants as the join's were. */
function claimsOf(request: HookRequest): TokenClaims | undefined {
  const c = request.claims;
  if (!c) return undefined;
  return { sub: c.sub, room: c.room, name: c.name, grants: new Set(c.grants), exp: c.exp };
}
