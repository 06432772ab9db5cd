// The operator API on two nodes: who may call it, what it refuses, and every action as the
// clients of both nodes see it (kick, send, close, state), plus the cluster view and a drain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { killAllNodes, startCluster, startNode, untilMetric, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { ADMIN_API_KEYS, READ_KEY, callApi } from '../support/operator-api.js';
import type { TestClient } from '../support/test-client.js';

let a: RunningNode;
let b: RunningNode;
let options: Parameters<typeof startNode>[0];
const clients = new ClientTracker();
const client = (node: RunningNode) => clients.connect(node);

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: { ADMIN_API_KEYS, NODE_HEARTBEAT_MS: '500', DRAIN_TIMEOUT_MS: '3000', DRAIN_SPREAD_MS: '200' },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
  options = cluster.options;
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

/** alice on node a, bob and carol on node b, all in one new room. */
async function threeInARoom() {
  const room = newRoom('op');
  const alice = await client(a);
  const bob = await client(b);
  const carol = await client(b);
  const aj = await alice.join(room, { name: 'alice' });
  const bj = await bob.join(room, { name: 'bob' });
  const cj = await carol.join(room, { name: 'carol' });
  await alice.waitForType('peer-joined', (m) => m.peer.id === cj.self.id);
  await bob.waitForType('peer-joined', (m) => m.peer.id === cj.self.id);
  return { room, alice, bob, carol, ids: { alice: aj.self.id, bob: bj.self.id, carol: cj.self.id } };
}

/** A ping round trip: whatever the server sent before the pong has arrived. */
const settle = (...cs: TestClient[]) => Promise.all(cs.map((c) => c.request({ type: 'ping' })));

describe('who may call the API', () => {
  it('answers 401 without a key and with an unknown key, 403 to a read key on a write, 200 to a read key on a read', async () => {
    const room = newRoom('op');
    const none = await callApi(a, 'GET', '/v1/rooms', { key: null });
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('unauthorized');
    const wrong = await callApi(a, 'GET', '/v1/rooms', { key: 'write-key-0123456789abcdeX' });
    expect(wrong.status).toBe(401);
    const readOnWrite = await callApi(a, 'POST', `/v1/rooms/${room}/close`, { key: READ_KEY, body: {} });
    expect(readOnWrite.status).toBe(403);
    expect(readOnWrite.body.error).toBe('forbidden');
    const read = await callApi(a, 'GET', '/v1/rooms', { key: READ_KEY });
    expect(read.status).toBe(200);
  });

  it('a node without ADMIN_API_KEYS says its API is off', async () => {
    const plain = await startNode({ ...options, env: {} });
    const reply = await callApi(plain, 'GET', '/v1/rooms');
    expect(reply.status).toBe(503);
    expect(reply.body.error).toBe('api-disabled');
    await plain.stop();
  });
});

describe('bad requests', () => {
  it('answers 400 naming the problem, and 404/405 for unknown routes and methods', async () => {
    const badRoom = await callApi(a, 'GET', '/v1/rooms/has%20space');
    expect(badRoom.status).toBe(400);
    expect(badRoom.body.message).toBe('path: room: 1-128 characters of [A-Za-z0-9_.:-]');
    const notJson = await callApi(a, 'PUT', '/v1/rooms/x/state', { rawBody: '{nope' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.message).toMatch(/JSON/);
    const noData = await callApi(a, 'POST', '/v1/rooms/x/send', { body: { to: ['p'] } });
    expect(noData.status).toBe(400);
    expect(noData.body.message).toBe('body: data: required');
    const badVersion = await callApi(a, 'PUT', '/v1/rooms/x/state', { body: { version: -1, data: {} } });
    expect(badVersion.status).toBe(400);
    const badLimit = await callApi(a, 'GET', '/v1/rooms?limit=0');
    expect(badLimit.status).toBe(400);
    expect((await callApi(a, 'GET', '/v1/nothing')).status).toBe(404);
    expect((await callApi(a, 'PATCH', '/v1/rooms')).status).toBe(405);
    expect((await callApi(a, 'GET', `/v1/rooms/${newRoom('never')}`)).status).toBe(404);
  });

  it('a body over MAX_MESSAGE_BYTES answers 413 with a JSON error, as the OpenAPI document says', async () => {
    const doc = (await callApi(a, 'GET', '/v1/openapi.json', { key: null })).body;
    const documented = doc.paths['/v1/rooms/{room}/state'].put.responses['413'];
    expect(documented).toBeDefined();
    const schema = z.fromJSONSchema(documented.content['application/json'].schema);
    const data = { blob: 'x'.repeat(64 * 1024) };
    const reply = await callApi(a, 'PUT', `/v1/rooms/${newRoom('big')}/state`, { body: { version: 0, data } });
    expect(reply.status).toBe(413);
    expect(reply.body).toMatchObject({ error: 'too-large', message: expect.stringMatching(/65536 bytes/) });
    expect(schema.safeParse(reply.body).success).toBe(true);
  });
});

describe('reading the cluster', () => {
  it('any node lists every room with its count, pages by cursor, and shows each participant with its node', async () => {
    const { room, ids } = await threeInARoom();
    const detail = await callApi(b, 'GET', `/v1/rooms/${room}`, { key: READ_KEY });
    expect(detail.status).toBe(200);
    expect(detail.body.room).toMatchObject({ name: room, participants: 3 });
    const nodeOf = Object.fromEntries(detail.body.participants.map((p: { id: string; node: string }) => [p.id, p.node]));
    expect(nodeOf).toEqual({ [ids.alice]: a.id, [ids.bob]: b.id, [ids.carol]: b.id });
    const one = await callApi(a, 'GET', `/v1/rooms/${room}/participants/${ids.bob}`, { key: READ_KEY });
    expect(one.body).toMatchObject({ id: ids.bob, name: 'bob', node: b.id, status: 'connected' });

    // Every room, a page of one at a time.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=1&cursor=${cursor}` : '?limit=1';
      const page = await callApi(a, 'GET', `/v1/rooms${query}`, { key: READ_KEY });
      expect(page.body.rooms.length).toBeLessThanOrEqual(1);
      seen.push(...page.body.rooms.map((r: { name: string }) => r.name));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toContain(room);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('lists both nodes with heartbeat and connections', async () => {
    const extra = await client(b);
    await untilMetric(b, 'signaling_connections', (v) => v >= 1);
    const deadline = Date.now() + 5000;
    let nodes: { id: string; status: string; connections: number | null; heartbeatAgeMs: number }[] = [];
    do {
      nodes = (await callApi(a, 'GET', '/v1/cluster', { key: READ_KEY })).body.nodes;
    } while (!((nodes.find((n) => n.id === b.id)?.connections ?? 0) >= 1) && Date.now() < deadline);
    expect(nodes.map((n) => n.id)).toEqual(expect.arrayContaining([a.id, b.id]));
    const nodeB = nodes.find((n) => n.id === b.id)!;
    expect(nodeB.status).toBe('up');
    expect(nodeB.connections).toBeGreaterThanOrEqual(1);
    expect(nodeB.heartbeatAgeMs).toBeLessThan(5000);
    extra.close();
  });
});

describe('actions seen by the clients of both nodes', () => {
  it('a kick through node a removes a participant held on node b: it gets kicked and 4001, the others peer-left kicked', async () => {
    const { room, alice, bob, carol, ids } = await threeInARoom();
    const reply = await callApi(a, 'DELETE', `/v1/rooms/${room}/participants/${ids.bob}`, { body: { reason: 'spam' } });
    expect(reply.status).toBe(200);
    expect(await bob.waitForType('kicked')).toMatchObject({ room, reason: 'spam' });
    expect((await bob.closed).code).toBe(4001);
    for (const other of [alice, carol]) {
      const left = await other.waitForType('peer-left', (m) => m.peer.id === ids.bob);
      expect(left.reason).toBe('kicked');
    }
    const after = await callApi(a, 'GET', `/v1/rooms/${room}/participants`, { key: READ_KEY });
    expect(after.body.participants.map((p: { id: string }) => p.id).sort()).toEqual([ids.alice, ids.carol].sort());
    // The others go on as before, and a second kick finds nobody.
    await carol.request({ type: 'broadcast', room, data: 'still here' });
    expect((await alice.waitForType('broadcast')).data).toBe('still here');
    expect((await callApi(a, 'DELETE', `/v1/rooms/${room}/participants/${ids.bob}`, { body: {} })).status).toBe(404);
  });

  it('a kicked connection that is in another room stays open there', async () => {
    const { room, bob, ids } = await threeInARoom();
    const other = newRoom('op');
    await bob.join(other);
    await callApi(a, 'DELETE', `/v1/rooms/${room}/participants/${ids.bob}`);
    await bob.waitForType('kicked', (m) => m.room === room);
    expect((await bob.request({ type: 'broadcast', room: other, data: 1, id: 'x' })).type).toBe('ack');
    expect((await bob.request({ type: 'broadcast', room, data: 1 })).type).toBe('error');
  });

  it('send reaches only the chosen participants, on either node; without `to` it reaches the whole room', async () => {
    const { room, alice, bob, carol, ids } = await threeInARoom();
    const chosen = await callApi(a, 'POST', `/v1/rooms/${room}/send`, { body: { data: { notice: 1 }, to: [ids.bob, 'nobody'] } });
    expect(chosen.status).toBe(200);
    expect(chosen.body).toEqual({ sent: [ids.bob], notFound: ['nobody'] });
    expect(await bob.waitForType('server')).toEqual({ type: 'server', room, data: { notice: 1 } });
    const everyone = await callApi(b, 'POST', `/v1/rooms/${room}/send`, { body: { data: 'all' } });
    expect(everyone.status).toBe(200);
    for (const c of [alice, bob, carol]) expect((await c.waitForType('server', (m) => m.data === 'all')).room).toBe(room);
    await settle(alice, bob, carol);
    expect(alice.seen((m) => m.type === 'server')).toHaveLength(1);
    expect(carol.seen((m) => m.type === 'server')).toHaveLength(1);
    expect(bob.seen((m) => m.type === 'server')).toHaveLength(2);
  });

  it('close ends the room for everyone on both nodes', async () => {
    const { room, alice, bob, carol } = await threeInARoom();
    const reply = await callApi(b, 'POST', `/v1/rooms/${room}/close`, { body: { reason: 'meeting over' } });
    expect(reply.body).toEqual({ removed: 3 });
    for (const c of [alice, bob, carol]) {
      expect(await c.waitForType('kicked')).toMatchObject({ room, reason: 'meeting over' });
      expect((await c.closed).code).toBe(4001);
    }
    const listed = await callApi(a, 'GET', '/v1/rooms?limit=500', { key: READ_KEY });
    expect(listed.body.rooms.map((r: { name: string }) => r.name)).not.toContain(room);
    expect((await callApi(a, 'POST', `/v1/rooms/${room}/close`, { body: {} })).status).toBe(404);
  });

  it('a state write is a compare-and-set that every participant sees as a state event from "server"', async () => {
    const { room, alice, bob, carol } = await threeInARoom();
    const written = await callApi(a, 'PUT', `/v1/rooms/${room}/state`, { body: { version: 0, data: { topic: 'ops' } } });
    expect(written).toEqual({ status: 200, body: { version: 1 } });
    for (const c of [alice, bob, carol]) {
      expect(await c.waitForType('state')).toEqual({ type: 'state', room, version: 1, data: { topic: 'ops' }, from: 'server' });
    }
    const stale = await callApi(b, 'PUT', `/v1/rooms/${room}/state`, { body: { version: 0, data: { topic: 'late' } } });
    expect(stale.status).toBe(409);
    expect(stale.body.state).toEqual({ version: 1, data: { topic: 'ops' } });
    expect((await callApi(b, 'GET', `/v1/rooms/${room}/state`, { key: READ_KEY })).body).toEqual({
      version: 1,
      data: { topic: 'ops' },
    });
    // A client's own write goes on from the version the server wrote.
    expect(await carol.request({ type: 'state', room, version: 1, data: { topic: 'mine' } })).toMatchObject({
      type: 'ack',
      version: 2,
    });
  });
});

describe('the OpenAPI document', () => {
  it('lists exactly the routes the node answers', async () => {
    const doc = (await callApi(a, 'GET', '/v1/openapi.json', { key: null })).body;
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.length).toBeGreaterThan(10);
    for (const op of documented) {
      const [method, path] = op.split(' ') as [string, string];
      const concrete = path.replace('{room}', 'doc-room').replace('{id}', 'doc-id');
      const reply = await callApi(a, method, concrete, { key: READ_KEY, body: method === 'GET' ? undefined : {} });
      // Every documented operation is routed: it may be refused, but not as an unknown route or method.
      expect([404, 405].includes(reply.status) && /no route|not allowed/.test(reply.body?.message ?? ''), op).toBe(false);
    }
    // And nothing routed is missing: a method the document does not list for a path is refused.
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      const concrete = path.replace('{room}', 'doc-room').replace('{id}', 'doc-id');
      for (const method of ['GET', 'POST', 'PUT', 'DELETE'].filter((m) => !(m.toLowerCase() in ops))) {
        const body = method === 'GET' ? undefined : {};
        expect((await callApi(a, method, concrete, { key: READ_KEY, body })).status, `${method} ${path}`).toBe(405);
      }
    }
  });
});

describe('drain through the API', () => {
  it('node b, asked through node a, sends its clients away and exits', async () => {
    const bob = await client(b);
    const reply = await callApi(a, 'POST', `/v1/cluster/nodes/${b.id}/drain`);
    expect(reply.status).toBe(202);
    expect((await bob.waitForType('reconnect', () => true, 10_000)).type).toBe('reconnect');
    expect(await b.exited).toBe(0);
    expect((await callApi(a, 'POST', '/v1/cluster/nodes/no-such-node/drain')).status).toBe(404);
  });
});
