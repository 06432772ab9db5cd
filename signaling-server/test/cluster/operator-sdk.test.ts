// Every operator action (signalctl kick, close, send, drain, and a state write through the API) as
// an application built on the client SDK sees it, with its clients on two real nodes. A kick or a
// room close is the end for the client it removed: it says so and does not join again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SignalingClient } from '../../../client/src/index.js';
import { killAllNodes, startCluster, startNode, type RunningNode } from '../support/cluster.js';
import { newRoom } from '../support/clients.js';
import { ADMIN_API_KEYS, READ_KEY, callApi } from '../support/operator-api.js';
import { SdkClients, recordEvents } from '../support/sdk-clients.js';
import { runSignalctl } from '../support/signalctl.js';

let a: RunningNode;
let b: RunningNode;
let options: Parameters<typeof startNode>[0];
let home: string;
const sdk = new SdkClients();
const signalctl = (args: string[]) => runSignalctl(home, a.httpUrl, args);

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: { ADMIN_API_KEYS, NODE_HEARTBEAT_MS: '500', DRAIN_TIMEOUT_MS: '5000', DRAIN_SPREAD_MS: '200' },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
  options = cluster.options;
  home = mkdtempSync(join(tmpdir(), 'operator-sdk-'));
});

afterEach(() => sdk.closeAll());

afterAll(async () => {
  await killAllNodes();
  rmSync(home, { recursive: true, force: true });
});

/** alice on node a and bob on node b, in one new room, each having seen the other. */
async function aliceAndBob(room = newRoom('sdk-op')) {
  const alice = sdk.make(a.url);
  const bob = sdk.make(b.url);
  await Promise.all([alice.connect(), bob.connect()]);
  const aj = await alice.join(room, { name: 'alice' });
  const bobSeen = alice.once('peer-joined');
  const bj = await bob.join(room, { name: 'bob' });
  await bobSeen;
  return { room, alice, bob, ids: { alice: aj.self.id, bob: bj.self.id } };
}

const participantIds = async (room: string): Promise<string[]> => {
  const reply = await callApi(a, 'GET', `/v1/rooms/${room}/participants`, { key: READ_KEY });
  return reply.status === 404 ? [] : reply.body.participants.map((p: { id: string }) => p.id).sort();
};

/** Resolves once `client` has the node's answer to a ping: whatever the node sent before has arrived. */
const settle = (...clients: SignalingClient[]) => Promise.all(clients.map((c) => c.ping()));

describe('kick', () => {
  it('ends the kicked client with `kicked` and the reason, and it does not join again', async () => {
    const { room, alice, bob, ids } = await aliceAndBob();
    const bobLog = recordEvents(bob, ['kicked', 'disconnected', 'reconnecting', 'closed', 'joined']);
    const left = alice.once('peer-left');
    const closed = bob.once('closed');

    const run = await signalctl(['kick', room, ids.bob, '--reason', 'spam']);
    expect(run.stdout.trim(), run.stderr).toBe(`removed ${ids.bob} from ${room}`);

    const end = await closed;
    expect(end).toMatchObject({ code: 4001, error: { code: 'kicked' } });
    expect(end.error.message).toContain('spam');
    expect(bobLog.map(([type]) => type)).toEqual(['kicked', 'disconnected', 'closed']);
    expect(bobLog[0]![1]).toEqual({ room, reason: 'spam' });
    expect(bobLog[1]![1]).toMatchObject({ code: 4001, willReconnect: false });
    expect(bob.state).toBe('closed');
    expect(bob.roomNames).toEqual([]);
    await expect(bob.join(room)).rejects.toMatchObject({ code: 'kicked' });
    expect(await left).toMatchObject({ room, peer: { id: ids.bob }, reason: 'kicked' });
    expect(await participantIds(room)).toEqual([ids.alice]);
  });

  it('a client kicked from one of its rooms stays connected in the others and forgets only that one', async () => {
    const { room, bob, ids } = await aliceAndBob();
    const other = newRoom('sdk-op');
    await bob.join(other);
    const kicked = bob.once('kicked');

    await signalctl(['kick', room, ids.bob]);

    expect(await kicked).toEqual({ room, reason: undefined });
    expect(bob.state).toBe('open');
    expect(bob.roomNames).toEqual([other]);
    await bob.broadcast(other, 'still here');
    await expect(bob.broadcast(room, 'gone')).rejects.toMatchObject({ code: 'not-joined' });
  });
});

describe('close', () => {
  it('ends every client of the room, on both nodes, with the reason, and the room stays empty', async () => {
    const { room, alice, bob } = await aliceAndBob();
    const ends = [alice, bob].map((c) => c.once('closed'));
    const kicks = [alice, bob].map((c) => c.once('kicked'));

    const run = await signalctl(['close', room, '--reason', 'meeting over']);
    expect(run.stdout.trim(), run.stderr).toBe(`closed ${room}: removed 2 participant(s)`);

    for (const kick of kicks) expect(await kick).toEqual({ room, reason: 'meeting over' });
    for (const end of ends) expect(await end).toMatchObject({ code: 4001, error: { code: 'kicked' } });
    expect([alice.state, bob.state]).toEqual(['closed', 'closed']);
    expect(await participantIds(room)).toEqual([]);
  });
});

describe('send', () => {
  it('reaches the chosen participants as a `server` event, and with no `to` the whole room', async () => {
    const { room, alice, bob, ids } = await aliceAndBob();
    const aliceGot = recordEvents(alice, ['server']);
    const bobGot = recordEvents(bob, ['server']);

    const toBob = bob.once('server');
    const chosen = await signalctl(['send', room, '{"notice":"hi"}', '--to', ids.bob]);
    expect(chosen.stdout.trim(), chosen.stderr).toBe('sent to 1 participant(s)');
    expect(await toBob).toEqual({ room, data: { notice: 'hi' } });

    const toAll = [alice, bob].map((c) => c.once('server', (e) => e.data === 'all'));
    const everyone = await signalctl(['send', room, '"all"']);
    expect(everyone.stdout.trim(), everyone.stderr).toBe(`sent to room ${room}`);
    for (const got of toAll) expect(await got).toEqual({ room, data: 'all' });

    await settle(alice, bob);
    expect(aliceGot.map(([, e]) => e.data)).toEqual(['all']);
    expect(bobGot.map(([, e]) => e.data)).toEqual([{ notice: 'hi' }, 'all']);
  });
});

describe('state', () => {
  it('a write through the API is a `state` event from "server" that the clients build on', async () => {
    const { room, alice, bob } = await aliceAndBob();
    const seen = [alice, bob].map((c) => c.once('state'));

    const written = await callApi(b, 'PUT', `/v1/rooms/${room}/state`, { body: { version: 0, data: { topic: 'ops' } } });
    expect(written).toEqual({ status: 200, body: { version: 1 } });

    for (const s of seen) expect(await s).toEqual({ room, version: 1, data: { topic: 'ops' }, from: 'server' });
    expect(alice.room(room)!.state).toEqual({ version: 1, data: { topic: 'ops' } });
    expect(await bob.updateState(room, (current) => ({ ...current, note: 'mine' }))).toEqual({
      version: 2,
      data: { topic: 'ops', note: 'mine' },
    });
  });
});

describe('drain', () => {
  it('moves the clients of the drained node to another one, with their participant ids, unnoticed by the room', async () => {
    const c = await startNode(options);
    const room = newRoom('sdk-op');
    const alice = sdk.make(a.url);
    const carol = sdk.make([c.url, a.url]);
    await Promise.all([alice.connect(), carol.connect()]);
    const aj = await alice.join(room, { name: 'alice' });
    const carolSeen = alice.once('peer-joined');
    const cj = await carol.join(room, { name: 'carol' });
    await carolSeen;
    const aliceSaw = recordEvents(alice, ['peer-joined', 'peer-left']);
    const carolLog = recordEvents(carol, ['reconnecting', 'joined', 'connected', 'closed']);
    const back = carol.once('connected', (e) => e.isReconnect);

    const run = await signalctl(['drain', c.id]);
    expect(run.stdout.trim(), run.stderr).toBe(`node ${c.id} is draining: its clients move to the other nodes, then it exits`);

    expect(await back).toEqual({ node: a.id, isReconnect: true });
    expect(carolLog[0]).toEqual(['reconnecting', expect.objectContaining({ reason: 'drain', attempt: 0 })]);
    expect(carolLog.find(([type]) => type === 'joined')![1]).toMatchObject({ room, resumed: true, self: { id: cj.self.id } });
    expect(await c.exited).toBe(0);
    const signal = alice.once('signal');
    await carol.signal(room, aj.self.id, 'from the other node');
    expect(await signal).toEqual({ room, from: cj.self.id, data: 'from the other node' });
    expect(aliceSaw).toEqual([]);
    expect(carolLog.map(([type]) => type)).not.toContain('closed');
  });
});
