// The bus message format: a one-line header and the client frame, already encoded, so a receiving
// node forwards the frame as it is instead of re-serialising it.
//   origin \t kind \t target \t number \n frame

export const enum Kind {
  /** A broadcast: every participant of the room but the sender. target = sender id. */
  Broadcast = 'b',
  /** A signal to one participant. target = recipient id. */
  Signal = 's',
  /** peer-joined. target = the new participant, number = membership seq. */
  PeerJoined = 'j',
  /** peer-left. target = the participant that left, number = membership seq. */
  PeerLeft = 'l',
  /** A state change. target = the writer, number = the new version. */
  State = 't',
  /**
   * The origin node resumed the participant: signals for it after this marker are the origin's to
   * deliver; a node still holding an older membership of it lets go. target = the participant,
   * number = the epoch of the new membership.
   */
  Claim = 'x',
  /**
   * Answers a Claim: the older membership's node says from where in the room's log the participant
   * has had nothing. target = the participant, number = the older membership's epoch, frame = that
   * position.
   */
  Handover = 'h',
  /**
   * An operator removed the participant: its node sends it the frame (`kicked`) and lets it go.
   * The `peer-left` that follows is an ordinary PeerLeft. target = the participant.
   */
  Kicked = 'k',
  /** A server message from the operator API. target = one participant, or '' for the whole room. */
  Server = 'v',
  /** A command for one node on its own channel (cluster/node-commands.ts); rooms ignore it. */
  NodeCommand = 'n',
}

export interface Envelope {
  origin: string;
  kind: Kind;
  target: string;
  num: number;
  frame: string;
}

export function encodeEnvelope(origin: string, kind: Kind, target: string, num: number, frame: string): string {
  return `${origin}\t${kind}\t${target}\t${num}\n${frame}`;
}

export function decodeEnvelope(payload: string): Envelope | null {
  const newline = payload.indexOf('\n');
  if (newline < 0) return null;
  const header = payload.slice(0, newline).split('\t');
  if (header.length !== 4) return null;
  const [origin, kind, target, num] = header as [string, Kind, string, string];
  return { origin, kind, target, num: Number(num), frame: payload.slice(newline + 1) };
}
