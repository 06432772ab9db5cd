// Who a join makes of its member: the token's claims for the room and the join hook's answer (who
// it is, what it may do), then the participant itself, either the one its resume token names
// (taken over from wherever it was) or a new one, recorded in the database and announced on the
// bus. The join flow around it (queue, `joined`, holds) is the RoomService's.
import type { Warner } from '../log-repeats.js';
import {
  anonymousAccess,
  fromStoredAccess,
  hookAccess,
  toStoredAccess,
  tokenAccess,
  type Access,
  type StoredAccess,
} from '../auth/access.js';
import { roomAllowed, type TokenClaims, type TokenVerifier } from '../auth/token-verifier.js';
import type { HookPurpose, HookRequest, JoinHook } from '../hook/join-hook.js';
import type { Metrics } from '../metrics.js';
import { ProtocolError } from '../protocol/errors.js';
import { encode, type JoinMessage } from '../protocol/messages.js';
import type { SeatCaps } from '../store/seats.js';
import type { HeldMembership, RoomSnapshot, RoomStore } from '../store/store.js';
import { dependency } from './dependency.js';
import { Kind } from './envelope.js';
import type { LocalRooms } from './local-rooms.js';
import { hashResumeSecret, newParticipantId, newResumeSecret, nextResumeSecret, parseResumeToken } from './resume-token.js';
import type { RoomChannel } from './room-channel.js';
import type { LocalMember, Session } from './session.js';
import type { SignalRouter } from './signal-router.js';

export interface AdmissionOptions {
  nodeId: string;
  store: RoomStore;
  channel: RoomChannel;
  router: SignalRouter;
  local: LocalRooms;
  /** Where a failed dependency is reported: repeated failures are logged once per interval. */
  warnings: Warner;
  /** Null in anonymous mode: no token needed. */
  verifier: TokenVerifier | null;
  /** The application's join hook (JOIN_HOOK_URL); absent: tokens alone decide. */
  joinHook?: JoinHookPolicy;
  metrics: Metrics;
  maxParticipantsPerRoom: number;
  /** How many participants in grace may hold seats, per room and per identity (store/seats.ts). */
  graceSeats?: SeatCaps;
  /** A resume that failed, which may have committed all the same. */
  onUncertainResume: (m: HeldMembership) => void;
}

export interface JoinHookPolicy {
  hook: JoinHook;
  /** Ask the hook on a resume too; otherwise the participant keeps the access it joined with. */
  isAskedOnResume: boolean;
  /** Admit a join the hook could not decide as the token alone says (anonymous without tokens). */
  isFailOpen: boolean;
}

/** What a join acts under before the store is asked. */
export interface Authorization {
  claims: TokenClaims | undefined;
  /** Null for a resume whose access the store keeps (the hook was not asked, or failed open). */
  access: Access | null;
  /** The name and meta the join hook chose; absent: the token's name, else the client's. */
  name?: string;
  meta?: Record<string, unknown>;
  /** The request the hook was asked with, kept for its re-checks; null when it was not asked. */
  hookRequest: HookRequest | null;
}

export interface Admitted {
  snapshot: RoomSnapshot;
  /** The secret of the member's next resume token. */
  secret: string;
  isResumed: boolean;
  access: Access;
  hookRequest: HookRequest | null;
}

export class Admission {
  constructor(private readonly opts: AdmissionOptions) {}

  /** The claims and access this join acts under: its own token, else the connection's, and the hook's answer. */
  async authorize(session: Session, msg: JoinMessage): Promise<Authorization> {
    const claims = await this.verifyToken(session, msg);
    const policy = this.opts.joinHook;
    if (!policy) return { claims, access: claims ? tokenAccess(claims) : anonymousAccess(), hookRequest: null };
    // A resume the hook is not asked about keeps what the store holds; if the resume fails and
    // becomes a new participant, admit() asks the hook then.
    if (msg.resume !== undefined && !policy.isAskedOnResume) return { claims, access: null, hookRequest: null };
    return this.askHook(session, msg, claims, msg.resume !== undefined ? 'resume' : 'join');
  }

  private async verifyToken(session: Session, msg: JoinMessage): Promise<TokenClaims | undefined> {
    if (!this.opts.verifier) return undefined;
    const claims = msg.token !== undefined ? await this.opts.verifier.verify(msg.token) : session.claims;
    if (!claims) throw new ProtocolError('unauthorized', 'a token is required to join');
    if (claims.exp * 1000 < Date.now()) throw new ProtocolError('unauthorized', 'token expired');
    if (!roomAllowed(claims, msg.room)) throw new ProtocolError('forbidden', `the token does not grant room ${msg.room}`);
    return claims;
  }

  private async askHook(
    session: Session,
    msg: JoinMessage,
    claims: TokenClaims | undefined,
    purpose: 'join' | 'resume',
  ): Promise<Authorization> {
    const policy = this.opts.joinHook!;
    const request = hookRequestOf(purpose, session, msg, claims);
    const verdict = await policy.hook.ask(request);
    const decided = this.opts.metrics.joinHookDecisions;
    switch (verdict.kind) {
      case 'allow': {
        const { answer } = verdict;
        const access = hookAccess(answer, claims);
        decided.labels(purpose, 'allowed').inc();
        return { claims, access, name: answer.name, meta: answer.meta, hookRequest: request };
      }
      case 'deny':
        decided.labels(purpose, 'denied').inc();
        throw new ProtocolError(verdict.code, verdict.reason);
      case 'failed':
        if (policy.isFailOpen) {
          decided.labels(purpose, 'failed-open').inc();
          // A resume keeps what the store holds (the hook's narrower grants, its identity): an
          // outage must not widen them to the token's, nor make the participant a new one.
          if (purpose === 'resume') return { claims, access: null, hookRequest: null };
          return { claims, access: claims ? tokenAccess(claims) : anonymousAccess(), hookRequest: null };
        }
        decided.labels(purpose, 'failed-closed').inc();
        throw new ProtocolError('unavailable', 'the join hook could not decide; retry later');
    }
  }

  /**
   * Resumes the participant named by the join's resume token, or adds a new one. Sets the member's
   * id and resume hash before anything can be addressed to it.
   */
  async admit(member: LocalMember, msg: JoinMessage, meta: Record<string, unknown>, auth: Authorization): Promise<Admitted> {
    const { nodeId, store, channel, local, router, warnings } = this.opts;
    const { claims } = auth;
    const presented = msg.resume ? parseResumeToken(msg.resume) : null;
    if (presented) {
      // The next secret follows from the presented one, so a resume whose `joined` never arrived
      // can be tried again with the same token (the store takes either hash).
      const next = nextResumeSecret(presented.secret);
      member.resumeHash = next.hash;
      const resuming = store.resume({
        room: msg.room,
        participantId: presented.participantId,
        identity: resumingIdentity(auth, this.opts.joinHook !== undefined),
        ...(auth.access ? { access: toStoredAccess(auth.access) } : {}),
        resumeHash: hashResumeSecret(presented.secret),
        nextResumeHash: next.hash,
        nodeId,
      });
      // A resume that failed may still have committed (its COMMIT's answer was lost): then the
      // participant is held here with no connection. Its grace is recorded, which matches nothing
      // if it did not commit, and a retry with the same token takes it over.
      resuming.catch(() =>
        this.opts.onUncertainResume({ room: msg.room, participantId: presented.participantId, resumeHash: next.hash }),
      );
      const resumed = await dependency(resuming, warnings);
      if (resumed) {
        member.id = resumed.self.id;
        member.epoch = resumed.epoch;
        // A connection of this node that still holds the participant lets go of it: its gap starts
        // where that connection stopped, like any previous node's.
        const stale = local.find(member.id);
        if (stale && stale !== member) {
          router.goAway(stale);
          local.drop(stale);
        }
        router.beginResume(msg.room, member.id, member.epoch, resumed.lastNodeId);
        // Signals after this marker are ours; the gap before it is read back from the room's log.
        const claimed = await dependency(
          channel.publish(msg.room, { kind: Kind.Claim, participant: member.id, epoch: member.epoch }),
          warnings,
        );
        router.claimed(member.id, claimed);
        if (auth.access || resumed.access || !this.opts.joinHook) {
          const access = auth.access ?? keptAccess(resumed.identity, resumed.access, claims);
          return { snapshot: resumed, secret: next.secret, isResumed: true, access, hookRequest: auth.hookRequest };
        }
        // A row from before access was stored, and a hook that was not asked: nothing says what it
        // may do, so the hook decides as for a join (not every grant, as anonymous mode would).
        // A refusal reaches completeJoin, which sends the resumed participant into its grace.
        const decided = await this.askHook(member.session, msg, claims, 'join');
        if (decided.access!.identity !== resumed.identity) {
          throw new ProtocolError('forbidden', 'the join hook named another identity than the participant has');
        }
        return {
          snapshot: resumed,
          secret: next.secret,
          isResumed: true,
          access: decided.access!,
          hookRequest: decided.hookRequest,
        };
      }
    }
    // A resume the hook did not decide became a new participant: the hook decides it now.
    if (!auth.access) auth = await this.askHook(member.session, msg, claims, 'join');
    const access = auth.access!;
    const next = newResumeSecret();
    member.resumeHash = next.hash;
    const participantId = newParticipantId();
    member.id = participantId;
    // Peers may signal the newcomer as soon as they see peer-joined, before `joined` goes out.
    router.expect(participantId);
    const snapshot = await dependency(
      store.join(
        {
          room: msg.room,
          participantId,
          nodeId,
          // The hook's and the token's identity and name win over what the client claims.
          name: auth.name ?? claims?.name ?? msg.name ?? '',
          meta: auth.meta ?? meta,
          identity: access.identity,
          access: toStoredAccess(access),
          resumeHash: next.hash,
          maxParticipants: this.opts.maxParticipantsPerRoom,
          ...this.opts.graceSeats,
        },
        (s) =>
          channel.publishAndAwaitEcho(msg.room, {
            kind: Kind.PeerJoined,
            participant: participantId,
            seq: s.seq,
            frame: encode.peerJoined(msg.room, s.self),
          }),
      ),
      warnings,
    );
    // Local peers have seen peer-joined once its echo is back: only then may the newcomer speak.
    await channel.echo(msg.room, { kind: Kind.PeerJoined, participant: participantId, seq: snapshot.seq });
    return { snapshot, secret: next.secret, isResumed: false, access, hookRequest: auth.hookRequest };
  }
}

/**
 * The identity a resume must match: the hook's or the token's. Undefined (not compared) when a
 * hook decides access without tokens and was not asked: the resume secret alone proves it.
 */
function resumingIdentity(auth: Authorization, hasHook: boolean): string | null | undefined {
  if (auth.access) return auth.access.identity;
  if (auth.claims) return auth.claims.sub;
  return hasHook ? undefined : null;
}

/** The access a resume keeps: the stored one, else (a row from before it was stored, no hook) the token's. */
function keptAccess(identity: string | null, stored: StoredAccess | null, claims: TokenClaims | undefined): Access {
  if (stored) return fromStoredAccess(identity, stored);
  return claims ? tokenAccess(claims) : anonymousAccess();
}

/** The body of a join hook request for this join (docs/security.md, "Join hook"). */
export function hookRequestOf(
  purpose: HookPurpose,
  session: Session,
  msg: JoinMessage,
  claims: TokenClaims | undefined,
): HookRequest {
  const presented = msg.resume ? parseResumeToken(msg.resume) : null;
  const { address, cookies, headers } = session.request;
  return {
    type: purpose,
    room: msg.room,
    participant: presented?.participantId ?? null,
    name: msg.name ?? null,
    meta: msg.meta ?? {},
    address,
    token: msg.token ?? session.request.token,
    claims: claims
      ? { sub: claims.sub, room: claims.room, name: claims.name, grants: [...claims.grants], exp: claims.exp }
      : null,
    cookies,
    headers,
  };
}
