// Continuity across connections: backoff, resume, held messages, drains, heartbeats and the
// cases where reconnecting must stop.
import { describe, expect, it } from 'vitest';
import type { SignalingClient } from '../src/index.js';
import { FakeRooms, makeClient, record, startNode } from './helpers.js';

/** A port nothing listens on: one a server just gave back. */
async function deadUrl(): Promise<string> {
  const node = await startNode();
  const url = node.url;
  await node.stop();
  return url;
}

const connectedAgain = (client: SignalingClient) => client.once('connected', (e) => e.isReconnect);

describe('reconnecting', () => {
  it('retries with exponentially growing, jittered delays and gives up after maxAttempts', async () => {
    const client = makeClient(await deadUrl(), {
      reconnect: { initialDelayMs: 20, factor: 2, maxDelayMs: 80, jitter: 0.5, maxAttempts: 4 },
    });
    const log = record(client, ['reconnecting', 'closed']);
    await expect(client.connect()).rejects.toMatchObject({ code: 'connect-failed', failure: { closeCode: 1006 } });

    const delays = log
      .filter(([t]) => t === 'reconnecting')
      .map(([, e]) => e as { attempt: number; delayMs: number; reason: string; failure: { message: string } });
    expect(delays.map((d) => d.attempt)).toEqual([1, 2, 3, 4]);
    expect(delays.map((d) => d.reason)).toEqual(['connect-failed', 'connect-failed', 'connect-failed', 'connect-failed']);
    expect(delays[0]!.failure.message).toMatch(/ECONNREFUSED/);
    for (const [i, base] of [20, 40, 80, 80].entries()) {
      expect(delays[i]!.delayMs).toBeGreaterThanOrEqual(base / 2);
      expect(delays[i]!.delayMs).toBeLessThanOrEqual(base);
    }
    expect(log.at(-1)?.[0]).toBe('closed');
    expect(client.state).toBe('closed');
  });

  it('re-joins with the resume token after the connection drops and keeps its participant id', async () => {
    const node = await startNode();
    const alice = makeClient(node.url);
    const bob = makeClient(node.url);
    await Promise.all([alice.connect(), bob.connect()]);
    const a = await alice.join('lobby', { name: 'alice', meta: { k: 1 } });
    const b = await bob.join('lobby');
    const bobSaw = record(bob, ['peer-joined', 'peer-left']);
    const aliceLog = record(alice, ['disconnected', 'reconnecting', 'joined']);

    const back = connectedAgain(alice);
    const token = node.rooms.room('lobby').members.get(a.self.id)!.resume;
    node.connections[0]!.socket.terminate();
    await back;

    const rejoin = node.connections[2]!.received[0]!;
    expect(rejoin).toMatchObject({ type: 'join', room: 'lobby', name: 'alice', meta: { k: 1 } });
    expect(rejoin.resume).toBe(token);
    const joined = aliceLog.find(([t]) => t === 'joined')![1];
    expect(joined).toMatchObject({ isRejoin: true, resumed: true, self: { id: a.self.id } });
    expect(aliceLog.map(([t]) => t)).toEqual(['disconnected', 'reconnecting', 'joined']);
    expect(alice.room('lobby')?.peers.map((p) => p.id)).toEqual([b.self.id]);

    // Signalling in both directions works on the new connection, and bob saw no churn.
    const toBob = bob.once('signal');
    await alice.signal('lobby', b.self.id, 'after');
    expect((await toBob).from).toBe(a.self.id);
    expect(bobSaw).toEqual([]);
  });

  it('holds messages sent while reconnecting and sends them after the room is re-joined, in order', async () => {
    const rooms = new FakeRooms();
    const node = await startNode(rooms);
    const bobsNode = await startNode(rooms);
    const alice = makeClient(node.url);
    const bob = makeClient(bobsNode.url);
    await Promise.all([alice.connect(), bob.connect()]);
    await alice.join('lobby');
    const b = await bob.join('lobby');

    const port = node.port;
    const down = alice.once('disconnected');
    await node.stop();
    await down;
    expect(alice.state).toBe('reconnecting');
    const sent = [alice.signal('lobby', b.self.id, 1), alice.signal('lobby', b.self.id, 2), alice.broadcast('lobby', 3)];

    // The same cluster comes back on the same port, welcomes only when told to, and answers the
    // re-join only when told to.
    let heldJoin: (() => void) | undefined;
    const revived = await startNode(rooms, {
      port,
      holdWelcome: true,
      intercept: (c, m) => {
        if (m.type === 'join') heldJoin = () => revived.respond(c, m);
        return m.type === 'join';
      },
    });
    const bobGot: unknown[] = [];
    bob.on('signal', (e) => bobGot.push(e.data));
    bob.on('broadcast', (e) => bobGot.push(e.data));
    const lastArrives = bob.once('signal', (e) => e.data === 4);
    const conn = await revived.nextConnection();
    expect(conn.received).toEqual([]); // nothing goes out before welcome
    revived.releaseWelcome();
    await revived.frame((f) => f.type === 'join');
    expect(alice.state).toBe('rejoining');
    // Sent while the re-join is unanswered: must still go out after the ones held before it.
    sent.push(alice.signal('lobby', b.self.id, 4));
    heldJoin!();
    await Promise.all(sent);

    expect(revived.frames.map((f) => [f.type, f.data])).toEqual([
      ['join', undefined],
      ['signal', 1],
      ['signal', 2],
      ['broadcast', 3],
      ['signal', 4],
    ]);
    expect(revived.frames[0]!.resume).toBeTypeOf('string');
    await lastArrives;
    expect(bobGot).toEqual([1, 2, 3, 4]);
  });

  it('fails a request whose reply was lost with the connection as disconnected, without re-sending it', async () => {
    const node = await startNode(undefined, {
      intercept: (conn, m) => {
        if (m.type === 'signal' && m.data === 'lost') conn.socket.terminate();
        return m.data === 'lost';
      },
    });
    const alice = makeClient(node.url);
    const bob = makeClient(node.url);
    await Promise.all([alice.connect(), bob.connect()]);
    await alice.join('lobby');
    const b = await bob.join('lobby');
    const back = connectedAgain(alice);
    await expect(alice.signal('lobby', b.self.id, 'lost')).rejects.toMatchObject({ code: 'disconnected' });
    await back;
    await alice.ping();
    expect(node.frames.filter((f) => f.data === 'lost')).toHaveLength(1);
  });

  it('reports a new participant when the server could not resume, and reconciles the peer list', async () => {
    const node = await startNode();
    const alice = makeClient(node.url);
    const bob = makeClient(node.url);
    const carol = makeClient(node.url);
    await Promise.all([alice.connect(), bob.connect(), carol.connect()]);
    const a = await alice.join('lobby');
    await bob.join('lobby');
    const c = await carol.join('lobby');
    const log = record(alice, ['peer-left', 'peer-joined', 'joined', 'state']);

    // While alice is away her grace period ends and carol leaves; someone also changes the state.
    const down = alice.once('disconnected');
    node.connections[0]!.socket.terminate();
    await down;
    node.rooms.evict('lobby', a.self.id);
    node.rooms.evict('lobby', c.self.id, 'left');
    node.rooms.room('lobby').version = 3;
    node.rooms.room('lobby').data = { topic: 'new' };
    await connectedAgain(alice);

    const types = log.map(([t]) => t);
    expect(types).toEqual(['peer-left', 'state', 'joined']);
    expect(log[0]![1]).toMatchObject({ peer: { id: c.self.id }, isReconciled: true });
    expect(log[1]![1]).toMatchObject({ version: 3, data: { topic: 'new' }, from: undefined });
    const joined = log[2]![1] as { resumed: boolean; self: { id: string } };
    expect(joined.resumed).toBe(false);
    expect(joined.self.id).not.toBe(a.self.id);
  });

  it('honours reconnect{retryAfterMs}: holds messages, waits, then moves to the next URL and resumes', async () => {
    const rooms = new FakeRooms();
    const first = await startNode(rooms);
    const second = await startNode(rooms);
    const alice = makeClient([first.url, second.url]);
    const bob = makeClient(second.url);
    await Promise.all([alice.connect(), bob.connect()]);
    const a = await alice.join('lobby');
    const b = await bob.join('lobby');
    const reconnecting = alice.once('reconnecting');
    const moved = second.nextConnection();

    const drainedAt = Date.now();
    first.drain(300, 20);
    expect(await reconnecting).toEqual({ attempt: 0, delayMs: 300, reason: 'drain' });
    const held = alice.signal('lobby', b.self.id, 'held');
    await moved;
    expect(Date.now() - drainedAt).toBeGreaterThanOrEqual(295);
    expect(first.frames.some((f) => f.type === 'signal')).toBe(false);

    const got = bob.once('signal');
    await held;
    expect((await got).data).toBe('held');
    expect(alice.room('lobby')?.self.id).toBe(a.self.id);
    expect(alice.node).toBe(second.id);
  });

  it('drops a silent connection after the heartbeat goes unanswered and reconnects', async () => {
    let isDeaf = true;
    const node = await startNode(undefined, { intercept: (_c, m) => m.type === 'ping' && isDeaf });
    const client = makeClient(node.url, { heartbeatMs: 60, requestTimeoutMs: 120 });
    await client.connect();
    const reconnecting = client.once('reconnecting');
    expect(await reconnecting).toMatchObject({ reason: 'heartbeat', attempt: 1 });
    isDeaf = false;
    await connectedAgain(client);
    expect(node.frames.filter((f) => f.type === 'ping').length).toBeGreaterThanOrEqual(1);
  });

  it('emits room-lost when a re-join is refused and fails messages held for that room', async () => {
    let isForbidden = false;
    const node = await startNode(undefined, {
      intercept: (conn, m) => {
        if (!(isForbidden && m.type === 'join' && m.room === 'private')) return false;
        conn.send({ type: 'error', id: m.id, code: 'forbidden', message: 'no' });
        return true;
      },
    });
    const client = makeClient(node.url);
    await client.connect();
    await client.join('private');
    await client.join('public');
    const down = client.once('disconnected');
    isForbidden = true;
    node.connections[0]!.socket.terminate();
    await down;
    const heldPrivate = client.broadcast('private', 'x');
    const heldPublic = client.broadcast('public', 'y');
    const lost = client.once('room-lost');

    expect(await lost).toMatchObject({ room: 'private', error: { code: 'forbidden' } });
    await expect(heldPrivate).rejects.toMatchObject({ code: 'room-lost' });
    await expect(heldPublic).resolves.toBeUndefined();
    expect(client.roomNames).toEqual(['public']);
  });

  it('a re-join the node cannot serve drops the connection and tries again, without ending the client', async () => {
    let isUnavailable = false;
    const node = await startNode(undefined, {
      intercept: (conn, m) => {
        if (!(isUnavailable && m.type === 'join')) return false;
        isUnavailable = false;
        conn.send({ type: 'error', id: m.id, code: 'unavailable', message: 'database down' });
        return true;
      },
    });
    const client = makeClient(node.url);
    await client.connect();
    const { self } = await client.join('lobby');
    const log = record(client, ['reconnecting', 'closed']);
    isUnavailable = true;
    node.connections[0]!.socket.terminate();
    await connectedAgain(client);
    expect(log.map(([, e]) => (e as { reason?: string }).reason)).toEqual(['closed', 'rejoin-failed']);
    expect(client.room('lobby')?.self.id).toBe(self.id);
  });

  it('stops for good on a 1008 policy close', async () => {
    const node = await startNode();
    const client = makeClient(node.url);
    await client.connect();
    const log = record(client, ['disconnected', 'reconnecting', 'closed']);
    const closed = client.once('closed');
    node.connections[0]!.socket.close(1008, 'bad token');
    await closed;
    expect(log.map(([t]) => t)).toEqual(['disconnected', 'closed']);
    expect(log[0]![1]).toMatchObject({ code: 1008, willReconnect: false });
    await expect(client.ping()).rejects.toMatchObject({ code: 'closed' });
  });
});
