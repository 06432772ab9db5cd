// The client's picture of the rooms it is in: who is there, the shared state, and what is needed
// to re-join after a reconnect (the resume token and the original join options).
import type { IceServer, JoinedMessage, JsonObject, Peer, RoomState } from './protocol.js';

export interface JoinOptions {
  /** Display name, at most 64 characters. */
  name?: string;
  /** Free-form participant metadata, at most 4 KiB serialised. */
  meta?: JsonObject;
  /** JWT for this room, when the cluster requires one. */
  token?: string;
}

/** A snapshot of one room as the client currently sees it. */
export interface RoomSnapshot {
  room: string;
  self: Peer;
  peers: Peer[];
  state: RoomState;
  /** The ICE servers the cluster gave this participant, newest first taken; empty when it gives none. */
  iceServers: IceServer[];
}

interface Room {
  self: Peer;
  peers: Map<string, Peer>;
  state: RoomState;
  resume: string;
  options: JoinOptions;
  iceServers: IceServer[];
}

/** What changed when a room was joined again on a new connection. */
export interface Rejoin {
  resumed: boolean;
  added: Peer[];
  removed: string[];
  isStateChanged: boolean;
}

export class RoomRegistry {
  private readonly rooms = new Map<string, Room>();

  has(room: string): boolean {
    return this.rooms.has(room);
  }

  names(): string[] {
    return [...this.rooms.keys()];
  }

  snapshot(room: string): RoomSnapshot | undefined {
    const r = this.rooms.get(room);
    if (!r) return undefined;
    return { room, self: r.self, peers: [...r.peers.values()], state: r.state, iceServers: r.iceServers };
  }

  /** The `join` frame that re-joins a room on a new connection, resuming its participant. */
  rejoinRequest(room: string): { room: string; resume: string } & JoinOptions {
    const r = this.rooms.get(room);
    if (!r) throw new Error(`not in room ${room}`);
    return { room, ...r.options, resume: r.resume };
  }

  add(joined: JoinedMessage, options: JoinOptions): void {
    this.rooms.set(joined.room, {
      self: joined.self,
      peers: new Map(joined.peers.map((p) => [p.id, p])),
      state: joined.state,
      resume: joined.resume,
      options,
      iceServers: joined.iceServers ?? [],
    });
  }

  /** Replaces a room's picture with the server's answer to a re-join and reports the difference. */
  rejoin(joined: JoinedMessage): Rejoin {
    const before = this.rooms.get(joined.room);
    const resumed = joined.resumed ?? joined.self.id === before?.self.id;
    const oldPeers = before?.peers ?? new Map<string, Peer>();
    const newPeers = new Map(joined.peers.map((p) => [p.id, p]));
    const added = joined.peers.filter((p) => !oldPeers.has(p.id));
    const removed = [...oldPeers.keys()].filter((id) => !newPeers.has(id));
    const isStateChanged = before === undefined || before.state.version !== joined.state.version;
    this.rooms.set(joined.room, {
      self: joined.self,
      peers: newPeers,
      state: joined.state,
      resume: joined.resume,
      options: before?.options ?? {},
      iceServers: joined.iceServers ?? before?.iceServers ?? [],
    });
    return { resumed, added, removed, isStateChanged };
  }

  remove(room: string): boolean {
    return this.rooms.delete(room);
  }

  addPeer(room: string, peer: Peer): boolean {
    const r = this.rooms.get(room);
    if (!r) return false;
    r.peers.set(peer.id, peer);
    return true;
  }

  removePeer(room: string, peerId: string): boolean {
    return this.rooms.get(room)?.peers.delete(peerId) ?? false;
  }

  /** Takes renewed ICE servers; false when the room is unknown. */
  setIceServers(room: string, iceServers: IceServer[]): boolean {
    const r = this.rooms.get(room);
    if (!r) return false;
    r.iceServers = iceServers;
    return true;
  }

  state(room: string): RoomState | undefined {
    return this.rooms.get(room)?.state;
  }

  selfId(room: string): string | undefined {
    return this.rooms.get(room)?.self.id;
  }

  /**
   * Takes a state if it is newer than the one held; false when it is stale or the room unknown.
   * `isAuthoritative` (the server's answer to a request) takes it even when older, which only
   * happens when the room was emptied and created afresh.
   */
  applyState(room: string, state: RoomState, isAuthoritative = false): boolean {
    const r = this.rooms.get(room);
    if (!r) return false;
    if (state.version === r.state.version || (state.version < r.state.version && !isAuthoritative)) return false;
    r.state = state;
    return true;
  }
}
