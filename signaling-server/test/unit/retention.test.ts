import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Retention } from '../../src/cluster/retention.js';
import { createMetrics } from '../../src/metrics.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { PruneStore } from '../../src/store/retention-store.js';

/** A table of `rows` old rows that gives up to `limit` per call, recording each call's limit. */
function backlog(rows: { room_events: number; rooms: number; nodes: number }) {
  const calls: string[] = [];
  const take = (table: keyof typeof rows) => async (_olderThanMs: number, limit: number) => {
    calls.push(table);
    const n = Math.min(limit, rows[table]);
    rows[table] -= n;
    return n;
  };
  const pruner: PruneStore = { pruneEvents: take('room_events'), pruneRooms: take('rooms'), pruneNodes: take('nodes') };
  return { pruner, calls, rows };
}

function retention(store: MemoryStore, pruner: PruneStore, nodeId: string) {
  const metrics = createMetrics();
  const r = new Retention({
    store,
    pruner,
    nodeId,
    intervalMs: 60_000,
    eventRetentionMs: 1000,
    roomRetentionMs: 1000,
    nodeRetentionMs: 1000,
    batchSize: 10,
    log: pino({ level: 'silent' }),
    metrics,
  });
  return { r, metrics };
}

describe('Retention', () => {
  it('prunes in batches, events before rooms, and stops a round after 20 batches per table', async () => {
    const { pruner, calls, rows } = backlog({ room_events: 25, rooms: 500, nodes: 0 });
    const { r, metrics } = retention(new MemoryStore(), pruner, 'n1');
    expect(await r.tick()).toEqual({ room_events: 25, rooms: 200, nodes: 0 });
    expect(calls.indexOf('rooms')).toBeGreaterThan(calls.lastIndexOf('room_events'));
    expect(calls.filter((c) => c === 'room_events')).toHaveLength(3); // 10, 10, 5: a short batch ends it
    expect(rows.rooms).toBe(300); // the rest waits for the next rounds
    expect((await metrics.pruned.get()).values.find((v) => v.labels.table === 'rooms')?.value).toBe(200);
  });

  it('counts a failed round, keeps what it pruned before the failure, and prunes again next round', async () => {
    const { pruner, rows } = backlog({ room_events: 5, rooms: 5, nodes: 0 });
    let isDown = true;
    const failing: PruneStore = {
      ...pruner,
      pruneRooms: (olderThanMs, limit) =>
        isDown ? Promise.reject(new Error('connection lost')) : pruner.pruneRooms(olderThanMs, limit),
    };
    const { r, metrics } = retention(new MemoryStore(), failing, 'n1');
    expect(await r.tick()).toEqual({ room_events: 5, rooms: 0, nodes: 0 });
    expect((await metrics.backgroundErrors.get()).values.find((v) => v.labels.task === 'retention')?.value).toBe(1);
    isDown = false;
    expect((await r.tick()).rooms).toBe(5);
    expect(rows).toEqual({ room_events: 0, rooms: 0, nodes: 0 });
  });

  it('prunes on one node at a time: the one holding the lease', async () => {
    const store = new MemoryStore();
    const first = backlog({ room_events: 5, rooms: 0, nodes: 0 });
    const second = backlog({ room_events: 5, rooms: 0, nodes: 0 });
    expect((await retention(store, first.pruner, 'n1').r.tick()).room_events).toBe(5);
    expect(await retention(store, second.pruner, 'n2').r.tick()).toEqual({ room_events: 0, rooms: 0, nodes: 0 });
    expect(second.calls).toEqual([]);
  });
});
