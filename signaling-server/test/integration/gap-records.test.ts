// Gap records, on Redis and in memory: the newest membership's record wins, whatever order the
// saves land in, and checkpoints are kept per node and room.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryGapRecords, RedisGapRecords, type GapRecords } from '../../src/bus/gap-records.js';
import { testRedisUrl, uniqueName } from '../support/cluster.js';

const redis = new Redis(testRedisUrl());
afterAll(() => redis.disconnect());

describe.each([
  ['Redis', () => new RedisGapRecords(redis, `${uniqueName('gaps')}:`)],
  ['memory', () => new MemoryGapRecords()],
])('%s', (_name, make: () => GapRecords) => {
  it('keeps the record of the newest membership when an older one is saved late', async () => {
    const records = make();
    await records.save('r', 'p', { epoch: 2, position: '200-0', nodeId: 'b' }, 60_000);
    await records.save('r', 'p', { epoch: 1, position: '100-0', nodeId: 'a' }, 60_000);
    expect(await records.load('r', 'p')).toEqual({ epoch: 2, position: '200-0', nodeId: 'b' });
    await records.save('r', 'p', { epoch: 3, position: '300-0', nodeId: 'c' }, 60_000);
    expect(await records.load('r', 'p')).toEqual({ epoch: 3, position: '300-0', nodeId: 'c' });
    await records.save('r', 'p', { epoch: 3, position: '310-0', nodeId: 'c' }, 60_000);
    expect(await records.load('r', 'p')).toEqual({ epoch: 3, position: '310-0', nodeId: 'c' });
    expect(await records.load('r', 'other')).toBeNull();
  });

  it('keeps each node’s checkpoint per room', async () => {
    const records = make();
    await records.saveCheckpoints(
      'a',
      new Map([
        ['r', '5-0'],
        ['s', '6-0'],
      ]),
      60_000,
    );
    await records.saveCheckpoints('b', new Map([['r', '7-0']]), 60_000);
    expect(await records.loadCheckpoint('r', 'a', 60_000)).toBe('5-0');
    expect(await records.loadCheckpoint('s', 'a', 60_000)).toBe('6-0');
    expect(await records.loadCheckpoint('r', 'b', 60_000)).toBe('7-0');
    expect(await records.loadCheckpoint('s', 'b', 60_000)).toBeNull();
  });
});

it('on Redis, keeps a checkpoint for its TTL across a generation change, and lets it go after two', async () => {
  const records = new RedisGapRecords(redis, `${uniqueName('gaps')}:`);
  const ttlMs = 200;
  const generation = () => Math.floor(Date.now() / ttlMs);
  const nextGeneration = async (from: number) => {
    while (generation() === from) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  const saved = generation();
  await records.saveCheckpoints('a', new Map([['r', '5-0']]), ttlMs);
  await nextGeneration(saved);
  expect(await records.loadCheckpoint('r', 'a', ttlMs)).toBe('5-0');
  await nextGeneration(saved + 1);
  expect(await records.loadCheckpoint('r', 'a', ttlMs)).toBeNull();
});
