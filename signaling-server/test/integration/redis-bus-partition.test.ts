// RedisBus behind a black-hole proxy: a connection whose flow the network forgot (no FIN, no RST)
// is found dead by its probe, destroyed and opened again; the bus reports itself down meanwhile,
// and what was published while the subscriber was deaf is read back from the log, in order.
import { pino } from 'pino';
import { afterAll, afterEach, expect, it } from 'vitest';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { startBlackHoleProxy, type BlackHoleProxy } from '../support/black-hole-proxy.js';
import { testRedisUrl, uniqueName } from '../support/cluster.js';

const buses: RedisBus[] = [];
const proxies: BlackHoleProxy[] = [];
const prefix = `${uniqueName('part')}:`;

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
});

/** The shared test Redis through a proxy of its own. */
async function proxiedRedis(): Promise<{ url: string; proxy: BlackHoleProxy }> {
  const target = new URL(testRedisUrl());
  const proxy = await startBlackHoleProxy({ host: target.hostname, port: Number(target.port) });
  proxies.push(proxy);
  return { url: `redis://127.0.0.1:${proxy.port}`, proxy };
}

/** A bus with the probe at its defaults (REDIS_PROBE_INTERVAL_MS, REDIS_PROBE_TIMEOUT_MS). */
async function bus(url: string, silent: string[] = []) {
  const b = await RedisBus.connect({
    url,
    nodeId: uniqueName('node-'),
    prefix,
    timeoutMs: 3000,
    retentionMs: 60_000,
    probeIntervalMs: 1000,
    probeTimeoutMs: 2000,
    keepAliveMs: 1000,
    log: pino({ level: 'silent' }),
    onSilent: (connection) => silent.push(connection),
  });
  buses.push(b);
  return b;
}

async function until(check: () => boolean, what: string, ms: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

it('a subscriber whose flows are forgotten reports itself down within 5 s, comes back, and gets what it missed in order', async () => {
  const { url, proxy } = await proxiedRedis();
  const silent: string[] = [];
  const [sender, receiver] = [await bus(testRedisUrl()), await bus(url, silent)];
  const got: string[] = [];
  receiver.onMessage((_room, payload) => got.push(payload));
  let gaps = 0;
  receiver.onGap(() => gaps++);
  await receiver.subscribe('room');
  await sender.publish('room', 'before');
  await until(() => got.length === 1, 'the first message', 5000);

  proxy.setMode('forget');
  const sent = ['before'];
  // Published while the receiver's old connections are dead and nobody has told it.
  for (let i = 0; i < 20; i++) {
    sent.push(`m${i}`);
    await sender.publish('room', `m${i}`);
  }
  const downAfter = await until(() => !receiver.isUp(), 'the receiver reports itself down', 5000);
  expect(downAfter).toBeLessThanOrEqual(5000);
  await until(() => receiver.isUp(), 'the receiver up again on new connections', 10_000);
  await until(() => got.length >= sent.length, 'every message', 10_000);
  expect(got).toEqual(sent);
  expect(gaps).toBe(0);
  expect(silent).toEqual(expect.arrayContaining(['sub']));
  // It goes on: a message after the heal arrives live.
  await sender.publish('room', 'after');
  await until(() => got.at(-1) === 'after', 'the message after the heal', 5000);
});

it('a publisher whose flows are forgotten publishes again within seconds, not after TCP gives up', async () => {
  const { url, proxy } = await proxiedRedis();
  const silent: string[] = [];
  const [publisher, receiver] = [await bus(url, silent), await bus(testRedisUrl())];
  const got: string[] = [];
  receiver.onMessage((_room, payload) => got.push(payload));
  await receiver.subscribe('room');
  proxy.setMode('forget');
  // The first publish after the cut goes into the dead flow: it fails (its outcome unknown) once
  // the probe destroys the connection, instead of hanging for as long as TCP would wait.
  await expect(publisher.publish('room', 'into the void')).rejects.toThrow();
  const started = Date.now();
  for (;;) {
    const ok = await publisher.publish('room', 'after').then(
      () => true,
      () => false,
    );
    if (ok) break;
    if (Date.now() - started > 5000) throw new Error('the publisher did not come back within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await until(() => got.includes('after'), 'the publish after the heal', 5000);
  expect(silent).toEqual(expect.arrayContaining(['pub']));
});
