// The in-process bus keeps the same log contract as Redis: positions in order per room, and a read
// is complete when nothing between `after` and what it returns was dropped, whatever other rooms
// published in between.
import { expect, it } from 'vitest';
import { MemoryHub } from '../../src/bus/memory-bus.js';

it('reads a room back complete while other rooms publish in between', async () => {
  const bus = new MemoryHub().createBus();
  const first = await bus.publish('a', 'a1');
  await bus.publish('b', 'b1');
  await bus.publish('a', 'a2');
  await bus.publish('b', 'b2');
  const last = await bus.publish('a', 'a3');
  const { entries, isComplete } = await bus.read('a', first, last);
  expect(isComplete).toBe(true);
  expect(entries.map((e) => e.payload)).toEqual(['a2', 'a3']);
});

it('says a read is incomplete once the retention dropped what it asks for', async () => {
  const hub = new MemoryHub(0);
  const bus = hub.createBus();
  const first = await bus.publish('a', 'a1');
  await bus.publish('a', 'a2');
  await new Promise((resolve) => setTimeout(resolve, 5));
  const last = await bus.publish('a', 'a3');
  const { entries, isComplete } = await bus.read('a', first, last);
  expect(entries.map((e) => e.payload)).toEqual(['a3']);
  expect(isComplete).toBe(false);
});
