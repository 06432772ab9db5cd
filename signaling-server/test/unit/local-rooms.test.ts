// LocalRooms on its own: what local members are told of membership events, against the room's
// view, when departures repeat (a leave redone, a removal retried) or come during a join or a heal.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.js';
import { encode } from '../../src/protocol/messages.js';
import { Kind } from '../../src/rooms/envelope.js';
import { LocalRooms } from '../../src/rooms/local-rooms.js';
import type { RoomChannel } from '../../src/rooms/room-channel.js';
import { LocalMember, Session, type ClientLink } from '../../src/rooms/session.js';

const ROOM = 'r';

function localRooms() {
  const channel = { subscribe: async () => {}, unsubscribe: async () => {} } as unknown as RoomChannel;
  const fanout = { publish: () => {}, subscriberCount: () => 0 };
  return new LocalRooms({ channel, fanout, metrics: createMetrics(), log: pino({ level: 'silent' }) });
}

/** A member of ROOM whose join is in flight; `sent` is what its client got. */
function joining(rooms: LocalRooms, id: string) {
  const sent: { type: string; peer?: { id: string } }[] = [];
  const link: ClientLink = {
    send: (frame) => sent.push(JSON.parse(frame)),
    subscribe: () => {},
    unsubscribe: () => {},
    publish: () => {},
    close: () => {},
  };
  const member = new LocalMember(new Session(link, undefined), ROOM);
  member.id = id;
  const view = rooms.addJoining(member);
  return { member, view, sent };
}

/** Completes a join with the database's snapshot, as RoomService does. */
function joined(rooms: LocalRooms, m: ReturnType<typeof joining>, seq: number, ids: string[]) {
  m.member.seq = seq;
  m.view.applySnapshot(seq, ids);
  m.member.status = 'joined';
  rooms.addJoined(m.member);
  rooms.deliverHolds(m.member);
}

const event = (joinedRoom: boolean, id: string, seq: number) => ({
  kind: joinedRoom ? (Kind.PeerJoined as const) : (Kind.PeerLeft as const),
  participant: id,
  seq,
  frame: joinedRoom ? encode.peerJoined(ROOM, { id, name: '', meta: {} }) : encode.peerLeft(ROOM, id, 'disconnected'),
  origin: 'elsewhere',
});
const about = (sent: { type: string; peer?: { id: string } }[], type: string, id: string) =>
  sent.filter((f) => f.type === type && f.peer?.id === id).length;

describe('LocalRooms', () => {
  it('tells a member of a departure once, however often it comes', () => {
    const rooms = localRooms();
    const m = joining(rooms, 'm');
    joined(rooms, m, 1, ['m', 'x']);
    rooms.receive(ROOM, event(false, 'x', 2), false);
    rooms.receive(ROOM, event(false, 'x', 3), false); // a leave redone
    rooms.receive(ROOM, event(false, 'x', 4), false); // a removal retried
    expect(about(m.sent, 'peer-left', 'x')).toBe(1);
  });

  it('makes no ghost when a heal reads the database before a departure the view never saw a join of', () => {
    const rooms = localRooms();
    const m = joining(rooms, 'm');
    joined(rooms, m, 10, ['m']);
    // The peer-joined of x (seq 11) was lost in a gap; x leaves (12) while the heal reads seq 11.
    rooms.receive(ROOM, event(false, 'x', 12), false);
    rooms.heal(
      ROOM,
      11,
      [
        { id: 'm', name: '', meta: {} },
        { id: 'x', name: '', meta: {} },
      ],
      { version: 0, data: null },
    );
    expect(about(m.sent, 'peer-joined', 'x')).toBe(0);
    expect(rooms.isInRoom(ROOM, 'x')).toBe(false);
  });

  it('tells joined members of a departure the view lost by a newer snapshot, not by an event', () => {
    const rooms = localRooms();
    const n = joining(rooms, 'n');
    joined(rooms, n, 5, ['n']);
    rooms.receive(ROOM, event(true, 'p', 6), false); // a join whose commit failed: n is told
    // m joins here with a snapshot that no longer has p (rolled back); its retraction comes later.
    const m = joining(rooms, 'm');
    joined(rooms, m, 7, ['n', 'm']);
    rooms.receive(ROOM, event(false, 'p', 8), false);
    expect(about(n.sent, 'peer-joined', 'p')).toBe(1);
    expect(about(n.sent, 'peer-left', 'p')).toBe(1);
  });

  it('tells a joining member of a departure its own snapshot still lists, though the view had dropped it', () => {
    const rooms = localRooms();
    const first = joining(rooms, 'first');
    joined(rooms, first, 19, ['first', 'y']);
    // y's leave rolled back after its peer-left went out (20); the redo comes at 22.
    rooms.receive(ROOM, event(false, 'y', 20), false);
    const late = joining(rooms, 'late');
    rooms.receive(ROOM, event(false, 'y', 22), false);
    joined(rooms, late, 21, ['first', 'y', 'late']);
    expect(about(late.sent, 'peer-left', 'y')).toBe(1);
    expect(about(first.sent, 'peer-left', 'y')).toBe(1);
  });

  it('tells a departure again once a snapshot listed the participant, though the view had it leave', () => {
    const rooms = localRooms();
    const first = joining(rooms, 'first');
    joined(rooms, first, 19, ['first', 'y']);
    rooms.receive(ROOM, event(false, 'y', 20), false); // its leave rolled back after this went out
    rooms.receive(ROOM, event(true, 'z', 30), false);
    // late joins with a snapshot read before z's commit: older than the view, but it lists y.
    const late = joining(rooms, 'late');
    joined(rooms, late, 25, ['first', 'y', 'late']);
    rooms.receive(ROOM, event(false, 'y', 31), false); // the leave redone
    expect(about(late.sent, 'peer-left', 'y')).toBe(1);
  });
});
