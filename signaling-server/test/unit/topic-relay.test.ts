// The TopicRelay on the in-process bus: a topic's frames reach the local fan-out of every node
// subscribed to it, and a channel subscription the bus refused is tried again by the next subscriber.
import { pino } from 'pino';
import { expect, it } from 'vitest';
import type { RoomBus } from '../../src/bus/bus.js';
import { MemoryHub } from '../../src/bus/memory-bus.js';
import { createMetrics } from '../../src/metrics.js';
import { TopicRelay, localTopicOf } from '../../src/rooms/topic-relay.js';

function relayOn(bus: RoomBus, nodeId: string) {
  const delivered: [string, string][] = [];
  const relay = new TopicRelay({
    nodeId,
    bus,
    fanout: { publish: (topic, frame) => delivered.push([topic, frame]), subscriberCount: () => 1 },
    metrics: createMetrics(),
    log: pino({ level: 'silent' }),
  });
  return { relay, delivered };
}

it('hands a frame published on one node to the fan-out of every node subscribed to the topic', async () => {
  const hub = new MemoryHub(60_000);
  const a = relayOn(hub.createBus('a'), 'a');
  const b = relayOn(hub.createBus('b'), 'b');
  await a.relay.subscribe('doc {1}');
  await b.relay.publish('doc {1}', '{"type":"publish","topic":"doc {1}"}');
  await expect.poll(() => a.delivered).toEqual([[localTopicOf('doc {1}'), '{"type":"publish","topic":"doc {1}"}']]);
  expect(b.delivered).toEqual([]);
});

it('subscribes the channel again for the next subscriber when the bus refused the first', async () => {
  const bus = new MemoryHub(60_000).createBus('a');
  const subscribe = bus.subscribe.bind(bus);
  let calls = 0;
  bus.subscribe = (room) => (++calls === 1 ? Promise.reject(new Error('bus down')) : subscribe(room));
  const { relay } = relayOn(bus, 'a');
  await relay.subscribe('doc');
  await relay.subscribe('doc');
  await relay.subscribe('doc');
  expect(calls).toBe(2);
});
