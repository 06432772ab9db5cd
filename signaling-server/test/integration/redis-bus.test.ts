// RedisBus against a real Redis: what one bus publishes reaches every bus subscribed to the room,
// its own included, in publish order, and nothing reaches a bus that did not subscribe; a
// subscriber whose connection is cut reads back what it missed from the room's log, once, in order.
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { PublishOutcomeUnknown, Route } from '../../src/bus/bus.js';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { testRedisUrl, uniqueName } from '../support/cluster.js';
import { startThrowawayRedis } from '../support/throwaway-redis.js';

const buses: RedisBus[] = [];
const prefix = `${uniqueName('bus')}:`;

async function bus(url = testRedisUrl(), extra: { retentionMs?: number; timeoutMs?: number; nodeId?: string } = {}) {
  const b = await RedisBus.connect({
    url,
    nodeId: `node-${buses.length + 1}`,
    prefix,
    timeoutMs: 2000,
    retentionMs: 60_000,
    log: pino({ level: 'silent' }),
    ...extra,
  });
  buses.push(b);
  return b;
}

function collect(b: RedisBus) {
  const got: [string, string][] = [];
  b.onMessage((room, payload) => got.push([room, payload]));
  return got;
}

const until = async (check: () => boolean, what: string, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

afterAll(async () => {
  await Promise.all(buses.map((b) => b.close()));
});

/** Runs `test` against a private redis-server, so killing its clients harms nobody else. */
async function onPrivateRedis(test: (url: string, admin: Redis) => Promise<void>): Promise<void> {
  const redis = await startThrowawayRedis();
  const admin = new Redis(redis.url);
  try {
    await test(redis.url, admin);
  } finally {
    admin.disconnect();
    await redis.stop();
  }
}

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

it('refuses a message that contains a separator instead of splitting it on the way', async () => {
  const sender = await bus();
  await expect(sender.publish('r', 'one\x1etwo')).rejects.toThrow('\\x1e');
  await expect(sender.publish('r', 'one\x1ftwo')).rejects.toThrow('\\x1f');
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

it('reads back, in order and once, what a subscriber missed while its connection was killed again and again', async () => {
  await onPrivateRedis(async (url, admin) => {
    const [sender, receiver] = [await bus(url), await bus(url)];
    const got = collect(receiver);
    let gaps = 0;
    receiver.onGap(() => gaps++);
    await receiver.subscribe('k');
    const sent: string[] = [];
    for (let round = 0; round < 10; round++) {
      // As an output-buffer limit or a NAT timeout would: the subscriber's connection is cut.
      await admin.client('KILL', 'TYPE', 'pubsub');
      for (let i = 0; i < 20; i++) {
        const message = `m${round}-${i}`;
        sent.push(message);
        await sender.publish('k', message);
      }
    }
    await until(() => got.length >= sent.length, 'every message');
    await until(() => receiver.isUp(), 'the receiver reports itself up again');
    expect(got.map(([, p]) => p)).toEqual(sent);
    expect(gaps).toBe(0);
  });
});

/**
 * A TCP relay in front of Redis that can swallow what Redis answers, then cut every connection
 * through it: a command that Redis ran but whose reply never arrived, as when a network path or
 * a proxy drops the connection at that moment.
 */
async function startRelay(redisUrl: string) {
  const target = new URL(redisUrl);
  const sockets = new Set<Socket>();
  let isSwallowing = false;
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => isSwallowing || client.write(chunk));
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    swallowReplies: () => (isSwallowing = true),
    cutAll: () => {
      isSwallowing = false;
      for (const socket of sockets) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

it('delivers once a publish whose connection dropped after Redis ran it, and says its outcome is unknown', async () => {
  await onPrivateRedis(async (url) => {
    const relay = await startRelay(url);
    const sender = await bus(relay.url);
    try {
      const receiver = await bus(url);
      const got = collect(receiver);
      await receiver.subscribe('lost-reply');
      await sender.publish('lost-reply', 'before');
      relay.swallowReplies();
      const published = sender.publish('lost-reply', 'once').then(
        () => 'acked',
        (err: unknown) => (err instanceof PublishOutcomeUnknown ? 'unknown' : String(err)),
      );
      // Redis ran it: the receiver, connected directly, has it.
      await until(() => got.length === 2, 'the message at the receiver');
      relay.cutAll();
      // Not acked (the reply never came), and not sent again after the reconnect.
      expect(await published).toBe('unknown');
      await until(() => sender.isUp(), 'the sender reconnected');
      await eventuallyPublished(sender, 'lost-reply', 'after');
      await until(() => got.length >= 3, 'the next message');
      expect(got.map(([, p]) => p)).toEqual(['before', 'once', 'after']);
    } finally {
      await sender.close();
      relay.cutAll();
      await relay.close();
    }
  });
});

/** Publishes until a publish is taken (the publisher may still be reconnecting). */
async function eventuallyPublished(b: RedisBus, room: string, message: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    if (
      await b.publish(room, message).then(
        () => true,
        () => false,
      )
    )
      return;
    if (attempt === 100) throw new Error(`could not publish ${message}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('reports a gap when the log no longer holds what a subscriber missed', async () => {
  await onPrivateRedis(async (url, admin) => {
    const [sender, receiver] = [await bus(url), await bus(url)];
    const got = collect(receiver);
    let gaps = 0;
    receiver.onGap(() => gaps++);
    await receiver.subscribe('t');
    await sender.publish('t', 'first');
    await until(() => got.length === 1, 'the first message');
    // Lose the subscriber and the log together: what is published before it reconnects (its first
    // retry waits 100 ms) is gone for good.
    await admin.client('KILL', 'TYPE', 'pubsub');
    await sender.publish('t', 'lost');
    await admin.del(`${prefix}{r:t}:log`);
    await sender.publish('t', 'after');
    await until(() => got.some(([, p]) => p === 'after'), 'the message after the hole');
    expect(gaps).toBeGreaterThan(0);
    expect(got.map(([, p]) => p)).toEqual(['first', 'after']);
  });
});

it('gives each message its place in the room log, and reads a range back', async () => {
  const b = await bus();
  const positions = await Promise.all(['a', 'b', 'c'].map((m) => b.publish('range', m)));
  const { entries, isComplete } = await b.read('range', positions[0]!, positions[2]!);
  expect(isComplete).toBe(true);
  expect(entries.map((e) => e.payload)).toEqual(['b', 'c']);
  expect(entries.map((e) => e.position)).toEqual(positions.slice(1));
});

it('fails a subscribe that Redis does not answer in time', async () => {
  await onPrivateRedis(async (url, admin) => {
    const b = await bus(url, { timeoutMs: 300 });
    await admin.client('PAUSE', '2000', 'ALL');
    await expect(b.subscribe('slow')).rejects.toThrow('timed out');
  });
});

describe('routing to the node that holds a participant', () => {
  /** Three nodes in one room; `b` holds participant p (it published p's Home). */
  async function threeNodes(room: string, url = testRedisUrl()) {
    const [a, b, c] = [await bus(url), await bus(url), await bus(url)];
    const got = { a: collect(a), b: collect(b), c: collect(c) };
    let gaps = 0;
    for (const n of [a, b, c]) {
      n.onGap(() => gaps++);
      await n.subscribe(room);
    }
    await b.publish(room, 'home-p', Route.Home, 'p', 0);
    return { a, b, c, got, gaps: () => gaps };
  }
  const payloads = (got: [string, string][]) => got.map(([, p]) => p);

  it('sends a message for one participant to its node only, in order with the room messages', async () => {
    const { a, got, gaps } = await threeNodes('route-1');
    const sent: Promise<string>[] = [];
    // Interleaved in one turn and across turns: batches mix both channels.
    for (let i = 0; i < 30; i++) {
      sent.push(a.publish('route-1', `to-p-${i}`, Route.To, 'p'));
      if (i % 3 === 0) sent.push(a.publish('route-1', `room-${i}`));
      if (i % 10 === 0) await Promise.all(sent);
    }
    await Promise.all(sent);
    await a.publish('route-1', 'end');
    await until(() => ['a', 'b', 'c'].every((n) => got[n as 'a'].at(-1)?.[1] === 'end'), 'the last message everywhere');
    const everything = ['home-p'];
    for (let i = 0; i < 30; i++) {
      everything.push(`to-p-${i}`);
      if (i % 3 === 0) everything.push(`room-${i}`);
    }
    everything.push('end');
    expect(payloads(got.b)).toEqual(everything);
    const roomOnly = everything.filter((p) => !p.startsWith('to-p'));
    expect(payloads(got.a)).toEqual(roomOnly);
    expect(payloads(got.c)).toEqual(roomOnly);
    expect(gaps()).toBe(0);
  });

  it('follows the participant to the node of its newest Home, ignores an older one, and sends to all once it is gone', async () => {
    const { a, b, c, got } = await threeNodes('route-2');
    await c.publish('route-2', 'claim-p-2', Route.Home, 'p', 2);
    await b.publish('route-2', 'late-claim-p-1', Route.Home, 'p', 1);
    await a.publish('route-2', 'to-p-after-claims', Route.To, 'p');
    await a.publish('route-2', 'left-p', Route.Gone, 'p');
    await a.publish('route-2', 'to-p-after-leaving', Route.To, 'p');
    await until(() => got.a.at(-1)?.[1] === 'to-p-after-leaving', 'the last message on a');
    await until(() => got.b.at(-1)?.[1] === 'to-p-after-leaving' && got.c.at(-1)?.[1] === 'to-p-after-leaving', 'everywhere');
    expect(payloads(got.c)).toContain('to-p-after-claims');
    expect(payloads(got.b)).not.toContain('to-p-after-claims');
    expect(payloads(got.a)).not.toContain('to-p-after-claims');
  });

  it('reads back a message routed to this node alone that it missed, before the next room message', async () => {
    await onPrivateRedis(async (url) => {
      const { a, b, got, gaps } = await threeNodes('route-3', url);
      // b's subscriber misses what goes to its own channel, without losing its connection (as if
      // Redis had dropped that one message): only the next room message can tell it.
      const sub = (b as unknown as { sub: Redis }).sub;
      const ownChannel = `${prefix}{r:route-3}:n:${(b as unknown as { opts: { nodeId: string } }).opts.nodeId}`;
      await sub.unsubscribe(ownChannel);
      await a.publish('route-3', 'missed', Route.To, 'p');
      await sub.subscribe(ownChannel);
      await a.publish('route-3', 'room-after');
      await until(() => got.b.at(-1)?.[1] === 'room-after', 'the room message on b');
      expect(payloads(got.b)).toEqual(['home-p', 'missed', 'room-after']);
      expect(gaps()).toBe(0);
    });
  });

  it('reads back a missed message routed to this node alone before the next one routed to it', async () => {
    await onPrivateRedis(async (url) => {
      const { a, b, got } = await threeNodes('route-4', url);
      const sub = (b as unknown as { sub: Redis }).sub;
      const ownChannel = `${prefix}{r:route-4}:n:${(b as unknown as { opts: { nodeId: string } }).opts.nodeId}`;
      await sub.unsubscribe(ownChannel);
      await a.publish('route-4', 'missed', Route.To, 'p');
      await sub.subscribe(ownChannel);
      await a.publish('route-4', 'next', Route.To, 'p');
      await until(() => got.b.at(-1)?.[1] === 'next', 'the next message on b');
      expect(payloads(got.b)).toEqual(['home-p', 'missed', 'next']);
    });
  });
});

it('reads back a range longer than one page whole, in order', async () => {
  const b = await bus();
  const first = await b.publish('long-range', 'm0');
  const sent: Promise<string>[] = [];
  for (let i = 1; i <= 2500; i++) sent.push(b.publish('long-range', `m${i}`));
  const positions = await Promise.all(sent);
  const { entries, isComplete } = await b.read('long-range', first, positions.at(-1)!);
  expect(isComplete).toBe(true);
  expect(entries.map((e) => e.payload)).toEqual(Array.from({ length: 2500 }, (_, i) => `m${i + 1}`));
  expect((await b.read('long-range', first, '+')).entries).toHaveLength(2500);
});
