// The Redis Cluster hash slot of a key or shard channel (cluster-key-slot, the implementation
// ioredis itself routes with): keys and channels with one hash tag always share a slot.
import { createRequire } from 'node:module';

const clusterKeySlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

export function keySlot(key: string): number {
  return clusterKeySlot(key);
}

/** The items grouped by the slot of their key, in their order: what one cluster pipeline may carry. */
export function groupBySlot<T>(items: Iterable<T>, keyOf: (item: T) => string): T[][] {
  const bySlot = new Map<number, T[]>();
  for (const item of items) {
    const slot = keySlot(keyOf(item));
    const group = bySlot.get(slot);
    if (group) group.push(item);
    else bySlot.set(slot, [item]);
  }
  return [...bySlot.values()];
}
