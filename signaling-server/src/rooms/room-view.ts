// A node's view of one room it has members in: who the participants are (cluster-wide, for
// `peer-not-found` without a database round trip) and which local members to deliver to.
// Membership events arrive in the order the database serialised them; the view ignores those
// already covered by a newer snapshot.
import type { LocalMember } from './session.js';

/** How many departures a view remembers, to tell each only once. */
const DEPARTED_KEPT = 256;

export class RoomView {
  readonly locals = new Set<LocalMember>();
  readonly subscription: Promise<void>;
  private readonly members = new Set<string>();
  /** Participants this view saw leave by an event (the latest DEPARTED_KEPT): their clients were told. */
  private readonly departed = new Set<string>();
  private seq = -1;
  private isInitialized = false;
  /** Events seen before the first snapshot, applied on top of it. */
  private early: { seq: number; joined: boolean; id: string }[] = [];

  constructor(subscribe: () => Promise<void>) {
    this.subscription = subscribe();
    // A failed subscription is reported to the join awaiting it; keep it from being unhandled here.
    this.subscription.catch(() => {});
  }

  has(participantId: string): boolean {
    return this.members.has(participantId);
  }

  /** A copy of the participant ids the view holds now. */
  ids(): Set<string> {
    return new Set(this.members);
  }

  /**
   * A snapshot from the database (a join's, a resume's, a heal's). Whoever it lists, a member may
   * know of now, even when the view keeps its newer state: a later departure of them is told again.
   */
  applySnapshot(seq: number, participantIds: string[]): void {
    for (const id of participantIds) this.departed.delete(id);
    if (this.isInitialized && seq <= this.seq) return;
    this.members.clear();
    for (const id of participantIds) this.members.add(id);
    this.seq = seq;
    if (!this.isInitialized) {
      this.isInitialized = true;
      for (const e of this.early) this.applyEvent(e.seq, e.joined, e.id);
      this.early = [];
    }
  }

  /**
   * Applies a membership event. False for a departure this view already applied from an earlier
   * event (a leave redone, a removal retried): the members were told then.
   */
  applyEvent(seq: number, joined: boolean, participantId: string): boolean {
    if (!this.isInitialized) {
      this.early.push({ seq, joined, id: participantId });
      return true;
    }
    if (seq <= this.seq) return true;
    this.seq = seq;
    if (joined) {
      this.members.add(participantId);
      return true;
    }
    if (this.members.delete(participantId)) {
      if (this.departed.size >= DEPARTED_KEPT) this.departed.delete(this.departed.values().next().value!);
      this.departed.add(participantId);
      return true;
    }
    // Not held: told already if it left by an event here. Otherwise the view lost it some other way
    // (a newer snapshot, a heal) and members may still list it: they are told.
    return !this.departed.has(participantId);
  }
}
