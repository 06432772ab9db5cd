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

  it('says a departure it already applied from an event has nobody to tell, and any other has', () => {
    const v = view();
    v.applySnapshot(1, ['a', 'c']);
    expect(v.applyEvent(2, false, 'a')).toBe(true);
    // The same participant removed again: a leave redone, a removal retried.
    expect(v.applyEvent(3, false, 'a')).toBe(false);
    // One the view dropped by a newer snapshot: members may still list it.
    v.applySnapshot(4, ['b']);
    expect(v.applyEvent(5, false, 'c')).toBe(true);
    expect(v.applyEvent(6, true, 'd')).toBe(true);
    expect(v.applyEvent(7, false, 'd')).toBe(true);
  });
});
