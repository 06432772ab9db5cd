// Who a join makes of its member: the token's claims for the room, then the participant itself,
// either the one its resume token names (taken over from wherever it was) or a new one, recorded in
// the database and announced on the bus. The join flow around it (queue, `joined`, holds) is the
// RoomService's.
import type { Warner } from '../log-repeats.js';
import { roomAllowed, type TokenClaims, type TokenVerifier } from '../auth/token-verifier.js';
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
  maxParticipantsPerRoom: number;
  /** How many participants in grace may hold seats, per room and per identity (store/seats.ts). */
  graceSeats?: SeatCaps;
  /** A resume that failed, which may have committed all the same. */
  onUncertainResume: (m: HeldMembership) => void;
}

export interface Admitted {
  snapshot: RoomSnapshot;
  /** The secret of the member's next resume token. */
  secret: string;
  isResumed: boolean;
}

export class Admission {
  constructor(private readonly opts: AdmissionOptions) {}

  /** The claims this join acts under: its own token, else the connection's; none in anonymous mode. */
  async authorize(session: Session, msg: JoinMessage): Promise<TokenClaims | undefined> {
    if (!this.opts.verifier) return undefined;
    const claims = msg.token !== undefined ? await this.opts.verifier.verify(msg.token) : session.claims;
    if (!claims) throw new ProtocolError('unauthorized', 'a token is required to join');
    if (claims.exp * 1000 < Date.now()) throw new ProtocolError('unauthorized', 'token expired');
    if (!roomAllowed(claims, msg.room)) throw new ProtocolError('forbidden', `the token does not grant room ${msg.room}`);
    return claims;
  }

  /**
   * Resumes the participant named by the join's resume token, or adds a new one. Sets the member's
   * id and resume hash before anything can be addressed to it.
   */
  async admit(
    member: LocalMember,
    msg: JoinMessage,
    meta: Record<string, unknown>,
    claims: TokenClaims | undefined,
  ): Promise<Admitted> {
    const { nodeId, store, channel, local, router, warnings } = this.opts;
    const presented = msg.resume ? parseResumeToken(msg.resume) : null;
    if (presented) {
      // The next secret follows from the presented one, so a resume whose `joined` never arrived
      // can be tried again with the same token (the store takes either hash).
      const next = nextResumeSecret(presented.secret);
      member.resumeHash = next.hash;
      const resuming = store.resume({
        room: msg.room,
        participantId: presented.participantId,
        identity: claims?.sub ?? null,
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
        return { snapshot: resumed as RoomSnapshot, secret: next.secret, isResumed: true };
      }
    }
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
          // The token's identity and name win over what the client claims.
          name: claims?.name ?? msg.name ?? '',
          meta,
          identity: claims?.sub ?? null,
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
    return { snapshot, secret: next.secret, isResumed: false };
  }
}
