// What the domain knows of a connection: a link to send through (implemented by the transport) and
// the connection's memberships, one LocalMember per room.
import type { Grant, TokenClaims } from '../auth/token-verifier.js';
import type { ClientMessage, RequestId } from '../protocol/messages.js';

/** The transport's side of one client connection. */
export interface ClientLink {
  send(frame: string): void;
  /** Local room fan-out: uWS topics. */
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  /** Sends to every other subscriber of the topic on this node. */
  publish(topic: string, frame: string): void;
  close(code: number, reason: string): void;
}

/** What the upgrade request said about the client, for the join hook. */
export interface ConnectionRequest {
  /** The client's address as the limits see it (behind trusted proxies, the one they name). */
  address: string;
  /** The `?token=` of the connection, as sent; null without one. */
  token: string | null;
  /** Recorded only while a join hook is configured; empty otherwise. */
  cookies: Record<string, string>;
  headers: Record<string, string>;
}

const UNKNOWN_REQUEST: ConnectionRequest = { address: '', token: null, cookies: {}, headers: {} };

/** The transport's node-wide fan-out. */
export interface LocalFanout {
  publish(topic: string, frame: string): void;
  subscriberCount(topic: string): number;
}

export const topicOf = (room: string): string => `r:${room}`;

/** A room event held for a member whose join is still in flight. */
export interface HeldEvent {
  kind: 'membership' | 'state';
  num: number;
  target: string;
  frame: string;
}

export class Session {
  readonly memberships = new Map<string, LocalMember>();
  isClosed = false;
  constructor(
    readonly link: ClientLink,
    /** Claims of a token given at connect time (`?token=`); they cover every join. */
    readonly claims: TokenClaims | undefined,
    readonly request: ConnectionRequest = UNKNOWN_REQUEST,
  ) {}
}

/** One membership of a connection in a room, from the join request until it ends. */
export class LocalMember {
  id = '';
  /** Hash of this connection's resume secret: tells this membership apart from a later resume. */
  resumeHash = '';
  /** Counts the resumes of the participant: a Claim or Handover of an older membership is stale. */
  epoch = 0;
  status: 'joining' | 'joined' | 'gone' = 'joining';
  /** What the member's token or the join hook allows; undefined until it is admitted (anonymous mode: everything). */
  grants: ReadonlySet<Grant> | undefined;
  /** Who the token or the join hook says it is, once admitted; a re-check may not change it. */
  identity: string | null = null;
  /** Membership seq and state version this participant has seen; older events are not sent again. */
  seq = 0;
  version = 0;
  /** Events that arrived while joining, replayed (filtered) right after `joined`. */
  held: HeldEvent[] = [];
  /** Requests waiting behind an asynchronous one (join, state, leave): per-sender order holds. */
  queue: { msg: ClientMessage; requestId: RequestId | undefined }[] | null = [];

  constructor(
    readonly session: Session,
    readonly room: string,
  ) {}
}
