// The bus message format. In memory an envelope is one of the typed shapes below, each with the
// fields its kind needs; on the bus it is a one-line header and the client frame, already encoded,
// so a receiving node forwards the frame as it is instead of re-serialising it:
//   origin \t kind \t subject \t number \n body
// where the subject is the participant the kind is about (sender, recipient, writer...), the
// number its seq, version or epoch (0 when the kind has none), and the body the client frame (or,
// for a Handover, a log position). Only this module reads or writes that layout.
import type { Position } from '../bus/bus.js';

export const enum Kind {
  Broadcast = 'b',
  Signal = 's',
  PeerJoined = 'j',
  PeerLeft = 'l',
  State = 't',
  Claim = 'x',
  Handover = 'h',
  Kicked = 'k',
  Server = 'v',
  NodeCommand = 'n',
  Topic = 'p',
}

/** A broadcast: every participant of the room but the sender. */
export interface BroadcastEnvelope {
  kind: Kind.Broadcast;
  from: string;
  frame: string;
}

/** A signal to one participant. */
export interface SignalEnvelope {
  kind: Kind.Signal;
  to: string;
  frame: string;
}

/** peer-joined or peer-left, at the room's membership seq. */
export interface MembershipEnvelope {
  kind: Kind.PeerJoined | Kind.PeerLeft;
  participant: string;
  seq: number;
  frame: string;
}

/** A state change to `version`, written by `writer` (a participant, or the server). */
export interface StateEnvelope {
  kind: Kind.State;
  writer: string;
  version: number;
  frame: string;
}

/**
 * The origin node resumed the participant at `epoch`: signals for it after this marker are the
 * origin's to deliver; a node still holding an older membership of it lets go.
 */
export interface ClaimEnvelope {
  kind: Kind.Claim;
  participant: string;
  epoch: number;
}

/**
 * Answers a Claim: the node of the membership at `epoch` says from where in the room's log the
 * participant has had nothing.
 */
export interface HandoverEnvelope {
  kind: Kind.Handover;
  participant: string;
  epoch: number;
  start: Position;
}

/**
 * An operator removed the participant: its node sends it the frame (`kicked`) and lets it go. The
 * `peer-left` that follows is an ordinary membership envelope.
 */
export interface KickedEnvelope {
  kind: Kind.Kicked;
  participant: string;
  seq: number;
  frame: string;
}

/** A server message from the operator API, to one participant or (`to` null) to the whole room. */
export interface ServerEnvelope {
  kind: Kind.Server;
  to: string | null;
  frame: string;
}

/** A command for one node on its own channel (cluster/node-commands.ts); rooms ignore it. */
export interface NodeCommandEnvelope {
  kind: Kind.NodeCommand;
  command: string;
}

/** A frame published to a topic of a drop-in protocol (y-webrtc): every subscriber, sender included, gets it as is. */
export interface TopicEnvelope {
  kind: Kind.Topic;
  frame: string;
}

/** What a node publishes; the channel adds the origin. */
export type Envelope =
  | BroadcastEnvelope
  | SignalEnvelope
  | MembershipEnvelope
  | StateEnvelope
  | ClaimEnvelope
  | HandoverEnvelope
  | KickedEnvelope
  | ServerEnvelope
  | NodeCommandEnvelope
  | TopicEnvelope;

/** What a node receives: the envelope and the node that published it. */
export type ReceivedEnvelope = Envelope & { origin: string };

export function encodeEnvelope(origin: string, e: Envelope): string {
  switch (e.kind) {
    case Kind.Broadcast:
      return `${origin}\t${e.kind}\t${e.from}\t0\n${e.frame}`;
    case Kind.Signal:
      return `${origin}\t${e.kind}\t${e.to}\t0\n${e.frame}`;
    case Kind.PeerJoined:
    case Kind.PeerLeft:
    case Kind.Kicked:
      return `${origin}\t${e.kind}\t${e.participant}\t${e.seq}\n${e.frame}`;
    case Kind.State:
      return `${origin}\t${e.kind}\t${e.writer}\t${e.version}\n${e.frame}`;
    case Kind.Claim:
      return `${origin}\t${e.kind}\t${e.participant}\t${e.epoch}\n`;
    case Kind.Handover:
      return `${origin}\t${e.kind}\t${e.participant}\t${e.epoch}\n${e.start}`;
    case Kind.Server:
      return `${origin}\t${e.kind}\t${e.to ?? ''}\t0\n${e.frame}`;
    case Kind.NodeCommand:
      return `${origin}\t${e.kind}\t${e.command}\t0\n`;
    case Kind.Topic:
      return `${origin}\t${e.kind}\t\t0\n${e.frame}`;
  }
}

/** The envelope in a bus message; null when it is not one (malformed, or of an unknown kind). */
export function decodeEnvelope(payload: string): ReceivedEnvelope | null {
  const newline = payload.indexOf('\n');
  if (newline < 0) return null;
  // Exactly four header fields: three tabs, all before the newline.
  const t1 = payload.indexOf('\t');
  const t2 = t1 < 0 ? -1 : payload.indexOf('\t', t1 + 1);
  const t3 = t2 < 0 ? -1 : payload.indexOf('\t', t2 + 1);
  if (t3 < 0 || t3 > newline || payload.lastIndexOf('\t', newline) !== t3) return null;
  const origin = payload.slice(0, t1);
  const kind = payload.slice(t1 + 1, t2);
  const subject = payload.slice(t2 + 1, t3);
  const num = Number(payload.slice(t3 + 1, newline));
  if (!Number.isSafeInteger(num)) return null;
  const body = payload.slice(newline + 1);
  switch (kind) {
    case Kind.Broadcast:
      return { origin, kind, from: subject, frame: body };
    case Kind.Signal:
      return { origin, kind, to: subject, frame: body };
    case Kind.PeerJoined:
    case Kind.PeerLeft:
      return { origin, kind, participant: subject, seq: num, frame: body };
    case Kind.Kicked:
      return { origin, kind, participant: subject, seq: num, frame: body };
    case Kind.State:
      return { origin, kind, writer: subject, version: num, frame: body };
    case Kind.Claim:
      return { origin, kind, participant: subject, epoch: num };
    case Kind.Handover:
      return { origin, kind, participant: subject, epoch: num, start: body };
    case Kind.Server:
      return { origin, kind, to: subject === '' ? null : subject, frame: body };
    case Kind.NodeCommand:
      return { origin, kind, command: subject };
    case Kind.Topic:
      return { origin, kind, frame: body };
    default:
      return null;
  }
}

/** The participant a signal or a server message is for, when the envelope is one addressed to one. */
export function addresseeOf(e: Envelope): string | null {
  if (e.kind === Kind.Signal) return e.to;
  if (e.kind === Kind.Server) return e.to;
  return null;
}
