// Signals addressed to a participant between two connections: kept, then delivered after its
// resume, in order, once, on whichever node it resumes.
//
// The room's bus channel gives every node the same order of messages. The node where the
// participant's connection ended "owns" its gap and stores every signal for it in the mailbox.
// The node it resumes on publishes a Claim marker: signals before the marker are the owner's to
// store, signals after it are the new node's to deliver. The owner answers the marker with a
// Handover once its stores are done; the new node then delivers the mailbox, then what arrived
// after the marker, then goes live. Nothing is delivered twice, nothing out of order.
import type { Logger } from 'pino';
import type { ParticipantMailbox } from '../bus/mailbox.js';
import type { Metrics } from '../metrics.js';

interface Owned {
  room: string;
  /** performance.now() when this node took the gap. */
  since: number;
  /** The chain of this participant's mailbox writes, so the handover waits for all of them. */
  writes: Promise<unknown>;
  expiry: NodeJS.Timeout;
}

interface Claim {
  room: string;
  isMarkerSeen: boolean;
  /** Signals ordered after the marker, held until the mailbox has been delivered. */
  held: string[];
  isFinishing: boolean;
  joined: Promise<void>;
  markJoined: () => void;
  timeout: NodeJS.Timeout | null;
}

export interface GapSignalsOptions {
  mailbox: ParticipantMailbox;
  graceMs: number;
  maxPerParticipant: number;
  /** How long a resumed participant waits for its previous node's handover before going live. */
  handoverWaitMs: number;
  metrics: Metrics;
  log: Logger;
  publishHandover: (room: string, participantId: string) => Promise<void>;
  /** Sends frames to the resumed participant, if it is still here. */
  deliver: (participantId: string, frames: string[]) => void;
  /** The last owned participant of a room is gone: the room's subscription may end. */
  onRoomReleased: (room: string) => void;
}

export class GapSignals {
  private readonly owned = new Map<string, Owned>();
  private readonly claims = new Map<string, Claim>();
  /** Handovers not yet published: a stopping node must not close the bus before they are out. */
  private readonly handovers = new Set<Promise<void>>();

  constructor(private readonly opts: GapSignalsOptions) {}

  // ---- the previous node's side -----------------------------------------------------------------

  /** The participant's connection ended here: keep its signals until it resumes or its grace ends. */
  own(room: string, participantId: string): void {
    if (this.owned.has(participantId)) return;
    // A little past the grace, in case the reaper's peer-left never reaches this node.
    const expiry = setTimeout(() => this.release(participantId, true), this.opts.graceMs + 5000);
    expiry.unref();
    this.owned.set(participantId, { room, since: performance.now(), writes: Promise.resolve(), expiry });
  }

  owns(participantId: string): boolean {
    return this.owned.has(participantId);
  }

  ownsAnyIn(room: string): boolean {
    for (const o of this.owned.values()) if (o.room === room) return true;
    return false;
  }

  /** Gaps taken at or after `since` (performance.now()) and not yet claimed or expired. */
  ownedSince(since: number): number {
    let count = 0;
    for (const o of this.owned.values()) if (o.since >= since) count++;
    return count;
  }

  store(participantId: string, frame: string): void {
    const owned = this.owned.get(participantId);
    if (!owned) return;
    const { mailbox, graceMs, maxPerParticipant, metrics } = this.opts;
    owned.writes = owned.writes.then(() =>
      mailbox.push(participantId, frame, graceMs, maxPerParticipant).then(
        (isKept) => {
          if (isKept) metrics.deliveries.labels('mailbox').inc();
          else metrics.dropped.labels('mailbox-full').inc();
        },
        (err) => {
          metrics.dropped.labels('mailbox-unavailable').inc();
          this.opts.log.warn({ err: String(err), participant: participantId }, 'could not store a signal for a resuming participant');
        },
      ),
    );
  }

  /** Stops owning a participant; with `discard`, its stored signals are dropped (its grace ended). */
  release(participantId: string, discard: boolean): void {
    const owned = this.owned.get(participantId);
    if (!owned) return;
    clearTimeout(owned.expiry);
    this.owned.delete(participantId);
    if (discard) {
      void owned.writes
        .then(() => this.opts.mailbox.discard(participantId))
        .then(
          (dropped) => dropped > 0 && this.opts.metrics.dropped.labels('grace-expired').inc(dropped),
          () => {},
        );
    }
    if (!this.ownsAnyIn(owned.room)) this.opts.onRoomReleased(owned.room);
  }

  /** Resolves once every handover owed so far has been published. */
  async settled(): Promise<void> {
    await Promise.all(this.handovers);
  }

  // ---- the resuming node's side -----------------------------------------------------------------

  /** Call before publishing the Claim marker for a participant resumed on this node. */
  beginClaim(room: string, participantId: string): void {
    let markJoined!: () => void;
    const joined = new Promise<void>((resolve) => (markJoined = resolve));
    this.claims.set(participantId, { room, isMarkerSeen: false, held: [], isFinishing: false, joined, markJoined, timeout: null });
  }

  isClaiming(participantId: string): boolean {
    return this.claims.has(participantId);
  }

  /** The `joined` reply went out (or the join failed): gap signals may follow. */
  markJoined(participantId: string): void {
    this.claims.get(participantId)?.markJoined();
  }

  /** Abandons a claim whose join failed. */
  cancelClaim(participantId: string): void {
    const claim = this.claims.get(participantId);
    if (!claim) return;
    if (claim.timeout) clearTimeout(claim.timeout);
    this.claims.delete(participantId);
    claim.markJoined();
  }

  /**
   * A signal for a participant resumed here arrived from the bus. Returns false when the
   * participant is not being claimed (deliver it normally).
   */
  holdForClaim(participantId: string, frame: string): boolean {
    const claim = this.claims.get(participantId);
    if (!claim) return false;
    // Before the marker the previous node stores it; after it, it waits for the mailbox.
    if (claim.isMarkerSeen) claim.held.push(frame);
    return true;
  }

  // ---- markers ----------------------------------------------------------------------------------

  onClaim(room: string, participantId: string, isOwnMarker: boolean): void {
    const owned = this.owned.get(participantId);
    if (owned) {
      this.release(participantId, false);
      const handover = owned.writes
        .then(() => this.opts.publishHandover(room, participantId))
        .catch((err) => this.opts.log.warn({ err: String(err), participant: participantId }, 'could not publish a handover'));
      this.handovers.add(handover);
      void handover.then(() => this.handovers.delete(handover));
    }
    const claim = this.claims.get(participantId);
    if (isOwnMarker && claim && !claim.isMarkerSeen) {
      claim.isMarkerSeen = true;
      claim.timeout = setTimeout(() => void this.finish(participantId), this.opts.handoverWaitMs);
      claim.timeout.unref();
    }
  }

  onHandover(participantId: string): void {
    const claim = this.claims.get(participantId);
    if (claim?.isMarkerSeen) void this.finish(participantId);
  }

  private async finish(participantId: string): Promise<void> {
    const claim = this.claims.get(participantId);
    if (!claim || claim.isFinishing) return;
    claim.isFinishing = true;
    if (claim.timeout) clearTimeout(claim.timeout);
    let stored: string[] = [];
    try {
      stored = await this.opts.mailbox.take(participantId);
    } catch (err) {
      this.opts.log.warn({ err: String(err), participant: participantId }, 'could not read the mailbox of a resumed participant');
    }
    await claim.joined;
    if (this.claims.get(participantId) !== claim) return;
    this.claims.delete(participantId);
    // Signals that arrived while the mailbox was read are in `held` too, after the stored ones.
    this.opts.deliver(participantId, [...stored, ...claim.held]);
  }
}
