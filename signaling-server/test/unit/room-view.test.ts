import { describe, expect, it } from 'vitest';
import { RoomView } from '../../src/rooms/room-view.js';

const view = () => new RoomView(async () => {});

describe('RoomView', () => {
  it('applies events that arrived before the first snapshot on top of it, if newer', () => {
    const v = view();
    v.applyEvent(5, true, 'old');
    v.applyEvent(7, true, 'new');
    v.applySnapshot(6, ['a', 'old']);
    expect(v.has('new')).toBe(true);
    expect(v.has('old')).toBe(true);
    v.applyEvent(8, false, 'old');
    expect(v.has('old')).toBe(false);
  });

  it('ignores events and snapshots older than what it has', () => {
    const v = view();
    v.applySnapshot(10, ['a', 'b']);
    v.applyEvent(9, false, 'a');
    expect(v.has('a')).toBe(true);
    v.applySnapshot(8, ['z']);
    expect(v.has('z')).toBe(false);
    v.applySnapshot(12, ['c']);
    expect(v.has('a')).toBe(false);
    expect(v.has('c')).toBe(true);
  });

  it('says a departure of someone it does not hold has nobody to tell: already gone, or never seen', () => {
    const v = view();
    v.applySnapshot(1, ['a']);
    expect(v.applyEvent(2, false, 'a')).toBe(true);
    // The same participant removed again (a leave redone, a removal retried) and one whose join never went out.
    expect(v.applyEvent(3, false, 'a')).toBe(false);
    expect(v.applyEvent(4, false, 'never-joined')).toBe(false);
    expect(v.applyEvent(5, true, 'b')).toBe(true);
    expect(v.applyEvent(6, false, 'b')).toBe(true);
  });
});
