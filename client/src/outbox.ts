// Messages sent while there is no usable connection, held in order and released once the rooms
// are re-joined. Bounded, so that a client that stays offline does not grow without limit.
import { SignalingError } from './errors.js';
import type { ClientMessage, ServerMessage } from './protocol.js';

export interface HeldMessage {
  message: ClientMessage;
  /** Absent for a message sent without an id, for which nobody waits. */
  resolve?: (reply: ServerMessage) => void;
  reject?: (error: SignalingError) => void;
}

export class Outbox {
  private readonly held: HeldMessage[] = [];

  constructor(private readonly max: number) {}

  get size(): number {
    return this.held.length;
  }

  hold(item: HeldMessage): void {
    this.held.push(item);
    while (this.held.length > this.max) {
      this.held.shift()!.reject?.(new SignalingError('queue-full', `more than ${this.max} messages waiting for a connection`));
    }
  }

  /**
   * Sends everything in order. Messages for a room that could not be re-joined fail with that
   * room's error, except `leave`, which has nothing left to do and succeeds.
   */
  release(
    lostRooms: Map<string, SignalingError>,
    request: (message: ClientMessage) => Promise<ServerMessage>,
    write: (text: string) => void,
  ): void {
    for (const item of this.held.splice(0)) {
      const { message } = item;
      const lost = 'room' in message && message.type !== 'join' ? lostRooms.get(message.room) : undefined;
      if (lost && message.type === 'leave') item.resolve?.({ type: 'left', room: message.room });
      else if (lost) item.reject?.(lost);
      else if (item.resolve && item.reject) request(message).then(item.resolve, item.reject);
      else write(JSON.stringify(message));
    }
  }

  rejectAll(error: SignalingError): void {
    for (const item of this.held.splice(0)) item.reject?.(error);
  }
}
