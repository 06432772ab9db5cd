// The in-process bus keeps the same log contract as Redis: positions in order per room, and a read
// is complete when nothing between `after` and what it returns was dropped, whatever other rooms
// published in between.
import { expect, it } from 'vitest';
import { Route } from '../../src/bus/bus.js';
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

it('routes a message for one participant to the node of its newest Home only, and to all once it is gone', async () => {
  const hub = new MemoryHub();
  const [a, b, c] = [hub.createBus('a'), hub.createBus('b'), hub.createBus('c')];
  const got = new Map<string, string[]>();
  for (const bus of [a, b, c]) {
    got.set(bus.nodeId, []);
    bus.onMessage((_room, payload) => got.get(bus.nodeId)!.push(payload));
    await bus.subscribe('r');
  }
  await a.publish('r', 'to-p-nobody-holds', Route.To, 'p');
  await b.publish('r', 'home-p-b', Route.Home, 'p', 0);
  await a.publish('r', 'to-p-1', Route.To, 'p');
  await c.publish('r', 'home-p-c', Route.Home, 'p', 2);
  await b.publish('r', 'late-home-p-b', Route.Home, 'p', 1);
  await a.publish('r', 'to-p-2', Route.To, 'p');
  await a.publish('r', 'gone-p', Route.Gone, 'p');
  await a.publish('r', 'to-p-3', Route.To, 'p');
  await new Promise((resolve) => setImmediate(resolve));
  const everyone = ['to-p-nobody-holds', 'home-p-b', 'home-p-c', 'late-home-p-b', 'gone-p', 'to-p-3'];
  expect(got.get('a')).toEqual(everyone);
  expect(got.get('b')).toEqual(['to-p-nobody-holds', 'home-p-b', 'to-p-1', 'home-p-c', 'late-home-p-b', 'gone-p', 'to-p-3']);
  expect(got.get('c')).toEqual(['to-p-nobody-holds', 'home-p-b', 'home-p-c', 'late-home-p-b', 'to-p-2', 'gone-p', 'to-p-3']);
  // A read returns the whole log, whatever each message's route.
  const { entries } = await a.read('r', '0-0', '+');
  expect(entries).toHaveLength(8);
});
