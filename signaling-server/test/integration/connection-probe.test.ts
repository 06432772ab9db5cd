// The Redis connection probe against a real Redis: a busy event loop is not a silent connection.
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { ConnectionProbe } from '../../src/bus/connection-probe.js';
import { testRedisUrl } from '../support/cluster.js';

let cleanup: (() => void) | undefined;
afterEach(() => cleanup?.());

/** Keeps the event loop busy, as a long GC pause or a starved CPU does. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

it('a connection whose PING reply arrived while the event loop was busy past the deadline is kept', async () => {
  const redis = new Redis(testRedisUrl());
  const silent: string[] = [];
  const probe = new ConnectionProbe({ intervalMs: 50, timeoutMs: 100, onSilent: (name) => silent.push(name) });
  cleanup = () => {
    probe.stop();
    redis.disconnect();
  };
  await new Promise((resolve) => redis.once('ready', resolve));
  probe.watch('pub', redis);
  for (let i = 0; i < 20; i++) {
    // Right after the probe's interval has sent its PING: the reply comes back within a
    // millisecond, but the loop reads it only after the deadline has passed.
    await new Promise((resolve) => setTimeout(resolve, 50));
    blockEventLoop(300);
  }
  await redis.ping();
  expect(silent).toEqual([]);
  expect(redis.status).toBe('ready');
});
