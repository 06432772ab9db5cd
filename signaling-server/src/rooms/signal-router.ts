// Every path a `signal` takes, in one place: straight to a recipient on this node, through the room's
// log to the node that holds it, held for a newcomer until its `joined`, and across a resume.
//
// Names used here:
// - live: the recipient has a connection on this node that has had its `joined`;
// - in flight: signals this node published and has not yet seen come back from the bus;
// - early: signals for a newcomer between its peer-joined and its `joined`;
// - away: a participant whose connection ended; its gap starts at the room's log position at that
//   moment and is saved as a gap record, so any node can read back what it missed;
// - resume: this node took a participant over; signals after its Claim marker are held until what
//   the log holds of its gap has been read back and delivered after `joined`.
//
// Delivery across a resume is exactly once and in order because everything rests on the room's log:
// the previous node delivered the log up to the gap's start, the gap is read back from the log up to
// the Claim, and the new node delivers what comes after the Claim. Only when the previous node died
// without saying where the gap starts is the start its last checkpoint, so signals it delivered
// after that checkpoint arrive a second time (at least once, never lost).
import type { Logger } from 'pino';
import { START, comparePositions, type Position } from '../bus/bus.js';
import type { GapRecord, GapRecords } from '../bus/gap-records.js';
import type { Metrics } from '../metrics.js';
import { ProtocolError } from '../protocol/errors.js';
import { Kind, addresseeOf, decodeEnvelope, type SignalEnvelope } from './envelope.js';
import type { RoomChannel } from './room-channel.js';
import type { LocalMember } from './session.js';

/** How long a resume waits for its own Claim to come back through the subscription. */
const MARKER_WAIT_MS = 10_000;

/** Gap records outlive the grace by this much, for a resume that lands at its very end. */
const RECORD_MARGIN_MS = 30_000;

/** What the router needs to know of this node's members. */
export interface MemberDirectory {
  /** The local member holding a participant, once its join has committed here. */
  find(participantId: string): LocalMember | undefined;
  /** Whether the room's view lists the participant, on any node. */
  isInRoom(room: string, participantId: string): boolean;
  /** Lets go of a member on this node only, silently (another node holds it now). */
  drop(member: LocalMember): void;
  /** Keeps the room subscribed while a gap there is this node's to answer for; releaseRoom() ends that. */
  keepRoom(room: string): void;
  releaseRoom(room: string): void;
}

export interface SignalRouterOptions {
  nodeId: string;
  channel: RoomChannel;
  records: GapRecords;
  members: MemberDirectory;
  metrics: Metrics;
  log: Logger;
  graceMs: number;
  /** How long a resume waits for the previous node to say where the gap starts. */
  handoverWaitMs: number;
  /** How often this node saves its delivery checkpoints (0: never). */
  checkpointMs: number;
}

interface Away {
  room: string;
  epoch: number;
  /** Where its gap starts (known at once, or once the resume it interrupted has found it). */
  start: Promise<Position>;
  /** performance.now() when the connection ended. */
  since: number;
  expiry: NodeJS.Timeout;
}

class Resume {
  isMarkerSeen = false;
  claimPosition: Position | undefined;
  /** Signals after the Claim marker, delivered after the gap. */
  held: string[] = [];
  isAbandoned = false;
  readonly joined: Promise<void>;
  markJoined!: () => void;
  /** Resolves when this node's subscription has passed the Claim marker. */
  readonly markerSeen: Promise<void>;
  seeMarker!: () => void;
  /** Resolves with the previous membership's Handover, if one comes. */
  readonly handover: Promise<Position>;
  answer!: (start: Position) => void;
  /** Where the gap starts, once known. */
  start: Promise<Position> | undefined;

  constructor(
    readonly room: string,
    readonly participantId: string,
    readonly epoch: number,
    /** The node that last held the participant (this one, possibly). */
    readonly lastNodeId: string,
  ) {
    this.joined = new Promise((resolve) => (this.markJoined = resolve));
    this.markerSeen = new Promise((resolve) => (this.seeMarker = resolve));
    this.handover = new Promise((resolve) => (this.answer = resolve));
  }
}

export class SignalRouter {
  private readonly early = new Map<string, string[]>();
  /**
   * Per recipient: signals this node published that its subscription has not yet passed (still
   * being logged, or logged at a position beyond the room's). No timer: a subscriber that lost them
   * reads them back before it passes them.
   */
  private readonly inFlight = new Map<string, { room: string; pending: number; last: Position | null }>();
  /** Resumes that went live before their Claim came back: signals up to it were read back already. */
  private readonly readBackUntil = new Map<string, Position>();
  private readonly away = new Map<string, Away>();
  private readonly resumes = new Map<string, Resume>();
  /** Gap records being saved and handovers being published: a stopping node waits for them. */
  private readonly pending = new Set<Promise<unknown>>();
  /** Rooms in which this node delivered a signal from the bus since its last checkpoint. */
  private readonly delivered = new Set<string>();
  private readonly checkpointTimer: NodeJS.Timeout | null;
  private readonly deliveredSignal;

  constructor(private readonly opts: SignalRouterOptions) {
    this.deliveredSignal = opts.metrics.deliveries.labels('signal');
    this.checkpointTimer = opts.checkpointMs > 0 ? setInterval(() => void this.saveCheckpoints(), opts.checkpointMs) : null;
    this.checkpointTimer?.unref();
  }

  // ---- sending ---------------------------------------------------------------------------------

  /**
   * Routes a signal from `from` to `to` in `room`. Returns null when it was delivered on this node
   * at once, else the promise of its place in the room's log (the ack waits for it). Throws
   * peer-not-found when `to` is not in the room.
   */
  send(room: string, to: string, frame: string): Promise<Position> | null {
    const target = this.opts.members.find(to);
    // A participant resuming here takes its signals through the log, in the claim's order; one with
    // signals still in flight too, so this one cannot overtake them.
    if (target && target.room === room && target.status === 'joined' && !this.resumes.has(to) && !this.hasInFlight(to)) {
      target.session.link.send(frame);
      this.deliveredSignal.inc();
      return null;
    }
    if (!this.opts.members.isInRoom(room, to)) {
      throw new ProtocolError('peer-not-found', `no participant ${to.slice(0, 64)} in room ${room}`);
    }
    const entry = this.inFlight.get(to) ?? { room, pending: 0, last: null };
    entry.pending++;
    this.inFlight.set(to, entry);
    const published = this.opts.channel.publish(room, { kind: Kind.Signal, to, frame });
    published.then(
      (position) => {
        entry.pending--;
        if (entry.last === null || comparePositions(position, entry.last) > 0) entry.last = position;
      },
      () => entry.pending--,
    );
    return published;
  }

  /** Whether signals this node published to `to` may still be on their way to this node's members. */
  private hasInFlight(to: string): boolean {
    const entry = this.inFlight.get(to);
    if (!entry) return false;
    if (entry.pending > 0) return true;
    if (entry.last !== null && comparePositions(this.opts.channel.position(entry.room), entry.last) < 0) return true;
    this.inFlight.delete(to);
    return false;
  }

  // ---- receiving -------------------------------------------------------------------------------

  onSignal(room: string, to: string, frame: string, position: Position): void {
    // Published only when `to` was not live here at send time, so never a duplicate of the direct
    // path, even when this node sent it.
    const readBack = this.readBackUntil.get(to);
    if (readBack !== undefined) {
      if (comparePositions(position, readBack) <= 0) return;
      this.readBackUntil.delete(to);
    }
    const resume = this.resumes.get(to);
    if (resume) {
      // Before the marker it is part of the gap, read back from the log; after it, it waits.
      if (resume.isMarkerSeen) resume.held.push(frame);
      return;
    }
    const early = this.early.get(to);
    if (early) {
      early.push(frame);
      return;
    }
    const member = this.opts.members.find(to);
    if (member && member.room === room && member.status === 'joined' && !member.session.isClosed) {
      member.session.link.send(frame);
      this.deliveredSignal.inc();
      this.delivered.add(room);
    }
    // Anyone else's: `to` is away (its gap start covers this), or held by another node.
  }

  // ---- newcomers -------------------------------------------------------------------------------

  /** Peers may signal a newcomer once they see peer-joined: hold what comes before its `joined`. */
  expect(participantId: string): void {
    this.early.set(participantId, []);
  }

  /** The newcomer has its `joined`: what came early goes out now. */
  releaseEarly(member: LocalMember): void {
    const frames = this.early.get(member.id);
    this.early.delete(member.id);
    if (frames && frames.length > 0) this.deliver(member, frames);
  }

  forgetEarly(participantId: string): void {
    this.early.delete(participantId);
  }

  // ---- away --------------------------------------------------------------------------------------

  /**
   * The member's connection ended without `leave`: everything the room's log holds after this
   * moment is its gap. Saves where it starts, for whichever node it resumes on.
   */
  goAway(member: LocalMember): void {
    const { room, id, epoch } = member;
    const resume = this.resumes.get(id);
    let start: Promise<Position>;
    if (resume) {
      // Its own gap has not been delivered yet: the next node must read back from the same start.
      resume.isAbandoned = true;
      resume.markJoined();
      this.resumes.delete(id);
      start = this.startOf(resume);
    } else {
      // A newcomer that never had its `joined` has had nothing: its gap is all the log holds for it.
      start = Promise.resolve(this.early.delete(id) ? START : this.opts.channel.position(room));
    }
    this.forget(id);
    // The room stays subscribed while the gap is this node's to answer for (Claims, PeerLefts).
    this.opts.members.keepRoom(room);
    const expiry = setTimeout(() => this.forget(id), this.opts.graceMs + RECORD_MARGIN_MS);
    expiry.unref();
    this.away.set(id, { room, epoch, start, since: performance.now(), expiry });
    this.track(start.then((position) => this.saveAway(room, id, epoch, position)));
  }

  private async saveAway(room: string, participantId: string, epoch: number, position: Position): Promise<void> {
    const record = { epoch, position, nodeId: this.opts.nodeId };
    const ttl = this.opts.graceMs + RECORD_MARGIN_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.opts.records.save(room, participantId, record, ttl);
        return;
      } catch (err) {
        if (attempt >= 3) {
          // The next node asks this one (Handover) or falls back to a checkpoint.
          this.opts.metrics.backgroundErrors.labels('gap-record').inc();
          this.opts.log.warn({ err, room, participant: participantId }, 'could not save where a gap starts');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt).unref());
      }
    }
  }

  /** Participants that went away from this node at or after `since` and were not resumed since. */
  awaySince(since: number): number {
    let count = 0;
    for (const a of this.away.values()) if (a.since >= since) count++;
    return count;
  }

  /** The participant left, resumed, or its grace ended: this node answers for its gap no more. */
  forget(participantId: string): void {
    const away = this.away.get(participantId);
    if (!away) return;
    clearTimeout(away.expiry);
    this.away.delete(participantId);
    this.opts.members.releaseRoom(away.room);
  }

  // ---- resume ------------------------------------------------------------------------------------

  /** Call before publishing the Claim of a participant resumed here at `epoch`. */
  beginResume(room: string, participantId: string, epoch: number, lastNodeId: string): void {
    this.resumes.get(participantId)?.markJoined();
    const resume = new Resume(room, participantId, epoch, lastNodeId);
    // It went away from this very node: where its gap starts is known here.
    const away = this.away.get(participantId);
    if (away && away.room === room && away.epoch < epoch) resume.start = away.start;
    this.forget(participantId);
    this.resumes.set(participantId, resume);
  }

  /** The Claim is in the log at `position`: the gap can be read back up to it. */
  claimed(participantId: string, position: Position): void {
    const resume = this.resumes.get(participantId);
    if (!resume || resume.claimPosition !== undefined) return;
    resume.claimPosition = position;
    void this.finishResume(participantId, resume).catch((err) => {
      this.opts.metrics.backgroundErrors.labels('resume').inc();
      this.opts.log.error({ err, participant: participantId }, 'could not finish a resume');
    });
  }

  /** The `joined` reply went out: the gap may follow it. */
  markJoined(participantId: string): void {
    this.resumes.get(participantId)?.markJoined();
  }

  isResuming(participantId: string): boolean {
    return this.resumes.has(participantId);
  }

  /** The resume's join failed after the database took it over: record its gap for the next try. */
  abandonResume(member: LocalMember): void {
    if (this.resumes.has(member.id)) this.goAway(member);
  }

  /** Where the resumed participant's gap starts: the gap record, the previous node, or its checkpoint. */
  private startOf(resume: Resume): Promise<Position> {
    resume.start ??= this.findStart(resume);
    return resume.start;
  }

  private async findStart(resume: Resume): Promise<Position> {
    const { room, participantId, epoch, lastNodeId } = resume;
    const saved = await this.loadRecord(room, participantId);
    const record = saved && saved.epoch < epoch ? saved : null;
    // The membership just before this one knows what was delivered last.
    if (record && record.epoch === epoch - 1) return record.position;
    if (lastNodeId !== this.opts.nodeId) {
      // The node it left may be alive and know (its record may not have been saved).
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), this.opts.handoverWaitMs)));
      const answered = await Promise.race([resume.handover, timeout]);
      clearTimeout(timer);
      if (answered !== null) return answered;
    }
    // An older membership's record: the ones between never got as far as delivering (a resume
    // refused before `joined`), or they would have recorded their own gap.
    if (record) return record.position;
    const checkpoint = await this.opts.records
      .loadCheckpoint(room, lastNodeId, this.opts.graceMs + RECORD_MARGIN_MS)
      .catch(() => null);
    // Without a word from the node it left, read back from where that node had certainly
    // delivered (its checkpoint), or else everything the log may hold of the grace: what was
    // delivered already may come twice, but nothing acked is lost.
    const start = checkpoint ?? `${Date.now() - this.opts.graceMs - RECORD_MARGIN_MS}-0`;
    this.opts.metrics.resumesFromCheckpoint.inc();
    this.opts.log.warn(
      { room, participant: participantId, lastNodeId, checkpoint },
      'no exact gap start: reading back at least once',
    );
    return start;
  }

  private async loadRecord(room: string, participantId: string): Promise<GapRecord | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.opts.records.load(room, participantId);
      } catch (err) {
        if (attempt >= 3) {
          this.opts.metrics.backgroundErrors.labels('gap-record').inc();
          this.opts.log.warn({ err, room, participant: participantId }, 'could not read a gap record');
          return null;
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt).unref());
      }
    }
  }

  private async finishResume(participantId: string, resume: Resume): Promise<void> {
    const start = await this.startOf(resume);
    let frames: string[] = [];
    const until = resume.claimPosition!;
    if (comparePositions(start, until) < 0) {
      try {
        const { entries, isComplete } = await this.readWithRetry(resume.room, start, until);
        if (!isComplete) {
          this.opts.metrics.dropped.labels('log-trimmed').inc();
          this.opts.log.warn({ room: resume.room, participant: participantId }, 'the room log no longer holds all of a gap');
        }
        for (const entry of entries) {
          const envelope = decodeEnvelope(entry.payload);
          if (envelope && addresseeOf(envelope) === participantId) frames.push((envelope as SignalEnvelope).frame);
        }
      } catch (err) {
        this.opts.metrics.dropped.labels('bus-unavailable').inc();
        this.opts.log.warn({ err, room: resume.room, participant: participantId }, 'could not read a gap back');
        frames = [];
      }
    }
    // Signals before the Claim may still be on their way through the subscription: going live before
    // it has passed the marker would deliver them a second time.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), MARKER_WAIT_MS)));
    const isSeen = await Promise.race([resume.markerSeen.then(() => true), timeout]);
    clearTimeout(timer);
    if (!isSeen)
      this.opts.log.warn({ room: resume.room, participant: participantId }, 'own Claim not seen on the bus; going live');
    await resume.joined;
    if (this.resumes.get(participantId) !== resume || resume.isAbandoned) return;
    this.resumes.delete(participantId);
    const member = this.opts.members.find(participantId);
    if (member && member.status === 'joined' && !member.session.isClosed) this.deliver(member, [...frames, ...resume.held]);
    // A member that went away meanwhile saved this resume's start: the log still has it all.
  }

  private async readWithRetry(room: string, after: Position, until: Position) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.opts.channel.read(room, after, until);
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((resolve) => setTimeout(resolve, 250 * attempt).unref());
      }
    }
  }

  // ---- markers -------------------------------------------------------------------------------------

  onClaim(room: string, participantId: string, epoch: number, position: Position, isOwn: boolean): void {
    if (isOwn) {
      const resume = this.resumes.get(participantId);
      if (resume && resume.epoch === epoch && !resume.isMarkerSeen) {
        resume.isMarkerSeen = true;
        resume.seeMarker();
      }
      return;
    }
    // A stale Claim (an older membership's, published late) changes nothing.
    const member = this.opts.members.find(participantId);
    if (member && member.room === room && member.epoch < epoch) {
      // Resumed elsewhere while this connection still held it (a half-dead network): it had the
      // log up to this Claim, so the gap starts here.
      this.opts.log.info({ room, participant: participantId }, 'participant resumed on another node');
      const resume = this.resumes.get(participantId);
      if (resume) {
        resume.isAbandoned = true;
        this.resumes.delete(participantId);
        this.opts.members.drop(member);
        this.track(this.startOf(resume).then((start) => this.handOver(room, participantId, member.epoch, start)));
        return;
      }
      this.opts.members.drop(member);
      this.track(this.handOver(room, participantId, member.epoch, position));
      return;
    }
    const away = this.away.get(participantId);
    if (away && away.room === room && away.epoch < epoch) {
      this.forget(participantId);
      this.track(away.start.then((start) => this.handOver(room, participantId, away.epoch, start)));
    }
  }

  onHandover(participantId: string, epoch: number, start: Position): void {
    const resume = this.resumes.get(participantId);
    if (resume && epoch < resume.epoch) resume.answer(start);
  }

  private handOver(room: string, participantId: string, epoch: number, start: Position): Promise<unknown> {
    return this.opts.channel.publish(room, { kind: Kind.Handover, participant: participantId, epoch, start }).catch((err) => {
      this.opts.metrics.backgroundErrors.labels('handover').inc();
      this.opts.log.warn({ err, room, participant: participantId }, 'could not publish a handover');
    });
  }

  // ---- bookkeeping ---------------------------------------------------------------------------------

  private deliver(member: LocalMember, frames: string[]): void {
    for (const frame of frames) member.session.link.send(frame);
    this.deliveredSignal.inc(frames.length);
    this.delivered.add(member.room);
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private async saveCheckpoints(): Promise<void> {
    if (this.delivered.size === 0) return;
    const positions = new Map<string, Position>();
    for (const room of this.delivered) {
      const position = this.opts.channel.position(room);
      if (position !== START) positions.set(room, position); // not subscribed any more
    }
    this.delivered.clear();
    try {
      await this.opts.records.saveCheckpoints(this.opts.nodeId, positions, this.opts.graceMs + RECORD_MARGIN_MS);
    } catch (err) {
      this.opts.metrics.backgroundErrors.labels('checkpoint').inc();
      this.opts.log.warn({ err }, 'could not save delivery checkpoints');
    }
  }

  /** Resolves once every gap record and handover owed so far is out; stops the checkpoints. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  close(): void {
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
  }
}
