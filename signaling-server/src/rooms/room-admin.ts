// What an operator may do to rooms from any node: remove a participant, close a room, send a server
// message, write the room's state. Each change takes the same path as a client's (the room's lock,
// its seq, its event on the room's channel before commit); the node that holds a participant's
// socket acts on the envelope. It reads nothing cluster-wide itself: the API asks the store.
import type { Logger } from 'pino';
import type { RoomBus } from '../bus/bus.js';
import type { Metrics } from '../metrics.js';
import { encode, type RoomState } from '../protocol/messages.js';
import type { RoomStore } from '../store/store.js';
import { Kind } from './envelope.js';
import { RoomChannel } from './room-channel.js';

/** The `from` of a `state` event written through the API: no participant id looks like this. */
export const SERVER_WRITER = 'server';

export interface RoomAdminOptions {
  nodeId: string;
  store: RoomStore;
  bus: RoomBus;
  metrics: Metrics;
  log: Logger;
}

export type AdminStateWrite = { ok: true; version: number } | { ok: false; current: RoomState };

export class RoomAdmin {
  /** Publishes only: what arrives on the bus is RoomService's to handle. */
  private readonly channel: RoomChannel;

  constructor(private readonly opts: RoomAdminOptions) {
    this.channel = new RoomChannel({ nodeId: opts.nodeId, bus: opts.bus, metrics: opts.metrics, log: opts.log });
  }

  /**
   * Removes a participant, connected or in its grace period: its own client gets `kicked` (with the
   * reason), everyone else `peer-left` with reason `kicked`. False when it was not in the room.
   */
  async removeParticipant(room: string, participantId: string, reason?: string): Promise<boolean> {
    const departed = await this.opts.store.leave(
      { room, participantId },
      this.opts.nodeId,
      async (d) => {
        // Both before the commit, in this order on the room's channel: the holder lets the
        // participant go before the peer-left arrives, so its own client never sees that.
        await this.channel.publish(room, {
          kind: Kind.Kicked,
          participant: d.participantId,
          seq: d.seq,
          frame: encode.kicked(room, reason),
        });
        await this.channel.publish(room, {
          kind: Kind.PeerLeft,
          participant: d.participantId,
          seq: d.seq,
          frame: encode.peerLeft(room, d.participantId, 'kicked'),
        });
      },
      'kicked',
    );
    if (departed) this.opts.log.info({ room, participant: participantId }, 'participant removed through the API');
    return departed !== null;
  }

  /** Removes every listed participant (the room's members, as the caller read them). */
  async closeRoom(room: string, participantIds: string[], reason?: string): Promise<number> {
    let removed = 0;
    for (const id of participantIds) if (await this.removeParticipant(room, id, reason)) removed++;
    return removed;
  }

  /** A `server` message to every participant of the room on every node, or to the given ones. */
  async send(room: string, data: unknown, to?: string[]): Promise<void> {
    const frame = encode.server(room, data);
    if (to === undefined) {
      await this.channel.publish(room, { kind: Kind.Server, to: null, frame });
      return;
    }
    await Promise.all(to.map((id) => this.channel.publish(room, { kind: Kind.Server, to: id, frame })));
  }

  /** The room state's compare-and-set; participants get the usual `state` event, from `server`. */
  async writeState(room: string, expectedVersion: number, data: Record<string, unknown>): Promise<AdminStateWrite> {
    return this.opts.store.writeState({ room, participantId: SERVER_WRITER }, expectedVersion, data, (version) =>
      this.channel.publish(room, {
        kind: Kind.State,
        writer: SERVER_WRITER,
        version,
        frame: encode.state(room, version, data, SERVER_WRITER),
      }),
    );
  }
}
