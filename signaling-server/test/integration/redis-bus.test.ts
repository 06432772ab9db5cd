// RedisBus against a real Redis: what one bus publishes reaches every bus subscribed to the room,
// its own included, in publish order, and nothing reaches a bus that did not subscribe.
import { pino } from 'pino';
import { afterAll, expect, it } from 'vitest';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { testRedisUrl, uniqueName } from '../support/cluster.js';

const buses: RedisBus[] = [];
const prefix = `${uniqueName('bus')}:`;

async function bus() {
  const b = await RedisBus.connect({ url: testRedisUrl(), prefix, timeoutMs: 2000, log: pino({ level: 'silent' }) });
  buses.push(b);
  return b;
}

function collect(b: RedisBus) {
  const got: [string, string][] = [];
  b.onMessage((room, payload) => got.push([room, payload]));
  return got;
}

afterAll(async () => {
  await Promise.all(buses.map((b) => b.close()));
});

it('delivers to every subscriber of the room, in order, and to no one else', async () => {
  const [one, two, outsider] = [await bus(), await bus(), await bus()];
  const [gotOne, gotTwo, gotOutsider] = [collect(one), collect(two), collect(outsider)];
  await one.subscribe('r1');
  await two.subscribe('r1');
  await outsider.subscribe('r2');
  for (let i = 0; i < 500; i++) void one.publish('r1', `m${i}`);
  await one.publish('r1', 'last');
  // A round trip on the outsider's own room proves its subscriber connection is drained too.
  await outsider.publish('r2', 'marker');
  while (gotTwo.length < 501 || gotOne.length < 501 || gotOutsider.length < 1) await new Promise((r) => setTimeout(r, 5));
  const expected = [...Array.from({ length: 500 }, (_, i) => `m${i}`), 'last'];
  expect(gotOne.map(([, p]) => p)).toEqual(expected);
  expect(gotTwo.map(([, p]) => p)).toEqual(expected);
  expect(gotTwo.every(([room]) => room === 'r1')).toBe(true);
  expect(gotOutsider).toEqual([['r2', 'marker']]);
});

it('stops delivering after unsubscribe', async () => {
  const [sender, receiver] = [await bus(), await bus()];
  const got = collect(receiver);
  await receiver.subscribe('gone');
  await receiver.subscribe('marker');
  await receiver.unsubscribe('gone');
  await sender.publish('gone', 'lost');
  await sender.publish('marker', 'seen');
  while (got.length < 1) await new Promise((r) => setTimeout(r, 5));
  expect(got).toEqual([['marker', 'seen']]);
});

it('refuses a message that contains the batch separator instead of splitting it on the way', async () => {
  const sender = await bus();
  await expect(sender.publish('r', 'one\x1etwo')).rejects.toThrow('\\x1e');
});

it('carries the publishes of one turn to several rooms, each room in order', async () => {
  const [sender, receiver] = [await bus(), await bus()];
  const got = collect(receiver);
  await receiver.subscribe('x');
  await receiver.subscribe('y');
  const sent = [];
  for (let i = 0; i < 50; i++) sent.push(sender.publish(i % 2 ? 'x' : 'y', `m${i}`));
  await Promise.all(sent);
  while (got.length < 50) await new Promise((r) => setTimeout(r, 5));
  const of = (room: string) => got.filter(([r]) => r === room).map(([, p]) => p);
  expect(of('x')).toEqual(Array.from({ length: 25 }, (_, i) => `m${2 * i + 1}`));
  expect(of('y')).toEqual(Array.from({ length: 25 }, (_, i) => `m${2 * i}`));
});
