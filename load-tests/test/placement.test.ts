// The spread scenario compares rooms over 2 nodes with rooms over all of them; the comparison is
// only fair if each arm places the rooms as it says and loads every node alike.
import { describe, expect, it } from 'vitest';
import { spreadNode } from '../src/worker/placement.js';

const NODES = 8;
const ROOMS = 400;
const ROOM_SIZE = 8;

function placements(span: number) {
  return Array.from({ length: ROOMS }, (_, g) => Array.from({ length: ROOM_SIZE }, (_, m) => spreadNode(g, m, span, NODES)));
}

describe('spread placement', () => {
  for (const span of [2, 8]) {
    it(`puts each room of ${ROOM_SIZE} on exactly ${span} nodes, its sender and receiver on different ones`, () => {
      for (const room of placements(span)) {
        expect(new Set(room).size).toBe(span);
        expect(room[0]).not.toBe(room[1]);
      }
    });

    it(`with rooms over ${span} nodes, every node holds as many senders, receivers and members as any other`, () => {
      const rooms = placements(span);
      const count = (pick: (room: number[]) => number[]) => {
        const perNode = new Array<number>(NODES).fill(0);
        for (const room of rooms) for (const n of pick(room)) perNode[n]!++;
        return new Set(perNode);
      };
      expect(count((r) => [r[0]!])).toEqual(new Set([ROOMS / NODES]));
      expect(count((r) => [r[1]!])).toEqual(new Set([ROOMS / NODES]));
      expect(count((r) => r)).toEqual(new Set([(ROOMS * ROOM_SIZE) / NODES]));
    });
  }
});
