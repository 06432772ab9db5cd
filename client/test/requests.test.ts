// Requests and replies: ids, promised replies, protocol errors, timeouts, room events and state.
import { describe, expect, it } from 'vitest';
import { SignalingError } from '../src/index.js';
import { makeClient, startNode } from './helpers.js';

describe('requests and replies', () => {
  it('joins a room and resolves with self, peers and state; the peer sees it join', async () => {
    const node = await startNode();
    const alice = makeClient(node.url);
    const bob = makeClient(node.url);
    await Promise.all([alice.connect(), bob.connect()]);
    const a = await alice.join('lobby', { name: 'alice', meta: { color: 'red' } });
    const seen = alice.once('peer-joined');
    const b = await bob.join('lobby', { name: 'bob' });

    expect(a.self).toMatchObject({ name: 'alice', meta: { color: 'red' } });
    expect(a.peers).toEqual([]);
    expect(a.state).toEqual({ version: 0, data: null });
    expect(b.peers).toEqual([a.self]);
    expect((await seen).peer).toEqual(b.self);
    expect(alice.room('lobby')?.peers.map((p) => p.id)).toEqual([b.self.id]);
  });

  it('gives every request its own id and echoes it back to the right promise', async () => {
    const node = await startNode();
    const client = makeClient(node.url);
    await client.connect();
    await Promise.all([client.join('r1'), client.join('r2'), client.ping()]);
    const ids = node.frames.map((f) => f.id);
    expect(new Set(ids).size).toBe(3);
    expect(client.roomNames.sort()).toEqual(['r1', 'r2']);
  });

  it('rejects with the protocol code of an error reply', async () => {
    const node = await startNode();
    const client = makeClient(node.url);
    await client.connect();
    await client.join('lobby');
    const error = await client.join('lobby').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SignalingError);
    expect((error as SignalingError).code).toBe('already-joined');
    await expect(client.signal('lobby', 'nobody', { x: 1 })).rejects.toMatchObject({ code: 'peer-not-found' });
  });

  it('rejects with timeout when no reply comes in time, and keeps working', async () => {
    const node = await startNode(undefined, { intercept: (_conn, m) => m.type === 'ping' && m.id === 1 });
    const client = makeClient(node.url, { requestTimeoutMs: 150 });
    await client.connect();
    await expect(client.ping()).rejects.toMatchObject({ code: 'timeout' });
    await expect(client.ping()).resolves.toBeGreaterThanOrEqual(0);
  });

  it('delivers signal and broadcast events from other participants', async () => {
    const node = await startNode();
    const alice = makeClient(node.url);
    const bob = makeClient(node.url);
    await Promise.all([alice.connect(), bob.connect()]);
    const a = await alice.join('lobby');
    const b = await bob.join('lobby');
    const signal = bob.once('signal');
    const broadcast = bob.once('broadcast');
    await alice.signal('lobby', b.self.id, { sdp: 'offer' });
    await alice.broadcast('lobby', 'hello all', { ack: false });
    expect(await signal).toEqual({ room: 'lobby', from: a.self.id, data: { sdp: 'offer' } });
    expect(await broadcast).toEqual({ room: 'lobby', from: a.self.id, data: 'hello all' });
    expect(node.frames.find((f) => f.type === 'broadcast')).not.toHaveProperty('id');
  });

  it('emits peer-left and forgets the room on leave', async () => {
    const node = await startNode();
    const alice = makeClient(node.url);
    const bob = makeClient(node.url);
    await Promise.all([alice.connect(), bob.connect()]);
    await alice.join('lobby');
    const b = await bob.join('lobby');
    const left = alice.once('peer-left');
    await bob.leave('lobby');
    expect(await left).toMatchObject({ peer: { id: b.self.id }, reason: 'left', isReconciled: false });
    expect(bob.room('lobby')).toBeUndefined();
    expect(alice.room('lobby')?.peers).toEqual([]);
  });
});

describe('shared state', () => {
  it('setState returns the new version and the other participant gets the state event', async () => {
    const node = await startNode();
    const alice = makeClient(node.url);
    const bob = makeClient(node.url);
    await Promise.all([alice.connect(), bob.connect()]);
    const a = await alice.join('lobby');
    await bob.join('lobby');
    const event = bob.once('state');
    expect(await alice.setState('lobby', { topic: 'x' })).toBe(1);
    expect(await event).toEqual({ room: 'lobby', version: 1, data: { topic: 'x' }, from: a.self.id });
    expect(bob.room('lobby')?.state).toEqual({ version: 1, data: { topic: 'x' } });
  });

  it('updateState re-reads the state carried by version-conflict and applies the change on top', async () => {
    const node = await startNode();
    const client = makeClient(node.url);
    await client.connect();
    await client.join('lobby');
    // Another participant's update the client has not heard of yet.
    node.rooms.room('lobby').version = 4;
    node.rooms.room('lobby').data = { items: ['theirs'] };

    const seen: Array<[unknown, number]> = [];
    const result = await client.updateState<{ items: string[] }>('lobby', (current, version) => {
      seen.push([current, version]);
      return { items: [...(current?.items ?? []), 'mine'] };
    });

    expect(seen).toEqual([
      [null, 0],
      [{ items: ['theirs'] }, 4],
    ]);
    expect(result).toEqual({ version: 5, data: { items: ['theirs', 'mine'] } });
    expect(node.rooms.room('lobby').data).toEqual({ items: ['theirs', 'mine'] });
    expect(client.room('lobby')?.state).toEqual(result);
  });

  it('updateState gives up with version-conflict after maxAttempts', async () => {
    const node = await startNode();
    const client = makeClient(node.url);
    await client.connect();
    await client.join('lobby');
    let calls = 0;
    const attempt = client.updateState(
      'lobby',
      () => {
        calls++;
        node.rooms.setState('lobby', { by: 'someone else', calls }); // always one step ahead
        return { mine: calls };
      },
      { maxAttempts: 3 },
    );
    await expect(attempt).rejects.toMatchObject({ code: 'version-conflict' });
    expect(calls).toBe(3);
  });
});
