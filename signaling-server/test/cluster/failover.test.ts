// Statelessness: nodes can all be replaced without losing room state, and a node that dies
// without a goodbye leaves no ghost participants behind.
import { afterEach, describe, expect, it } from 'vitest';
import { killAllNodes, startCluster, startNode } from '../support/cluster.js';
import { ClientTracker } from '../support/clients.js';

const HEARTBEAT_MS = 1000;
const clients = new ClientTracker();
const client = (url: string) => clients.connect(url);

afterEach(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

describe('state survives the cluster', () => {
  it('after every node restarts, a client that joins sees the stored room state', async () => {
    const cluster = await startCluster(2);
    const [a, b] = cluster.nodes;
    const alice = await client(a!.url);
    await alice.join('kept');
    await alice.request({ type: 'state', room: 'kept', data: { topic: 'durable' }, version: 0 });
    alice.drop();
    await Promise.all(cluster.nodes.map((n) => n.stop()));

    const fresh = await Promise.all([startNode(cluster.options), startNode(cluster.options)]);
    expect(fresh.map((n) => n.id)).not.toContain(a!.id);
    expect(fresh.map((n) => n.id)).not.toContain(b!.id);
    const bob = await client(fresh[1]!.url);
    expect((await bob.join('kept')).state).toEqual({ version: 1, data: { topic: 'durable' } });
  });
});

describe('kill -9 of a node', () => {
  it('its participants leave for the others within three heartbeat periods', async () => {
    const cluster = await startCluster(2, { env: { NODE_HEARTBEAT_MS: String(HEARTBEAT_MS), RESUME_GRACE_MS: '60000' } });
    const [a, b] = cluster.nodes;
    const alice = await client(a!.url);
    const bob = await client(b!.url);
    const carol = await client(b!.url);
    const aj = await alice.join('ghosts');
    const bj = await bob.join('ghosts');
    const cj = await carol.join('ghosts');

    const killedAt = Date.now();
    await b!.kill();
    const left = [
      await alice.waitForType('peer-left', () => true, 10_000),
      await alice.waitForType('peer-left', () => true, 10_000),
    ];
    const elapsed = Date.now() - killedAt;
    expect(left.map((l) => l.peer.id).sort()).toEqual([bj.self.id, cj.self.id].sort());
    expect(left.every((l) => l.reason === 'disconnected')).toBe(true);
    // The budget is three heartbeat periods; a little more is allowed for the processes to run.
    expect(elapsed).toBeLessThan(3 * HEARTBEAT_MS + 500);

    const newcomer = await client(a!.url);
    expect((await newcomer.join('ghosts')).peers.map((p) => p.id)).toEqual([aj.self.id]);
  });

  it('a node restarted with the same NODE_ID does not resurrect its old participants', async () => {
    // A long heartbeat keeps the reaper out of it: only the restart itself can clean up.
    const cluster = await startCluster(2, { env: { NODE_HEARTBEAT_MS: '30000', RESUME_GRACE_MS: '60000' } });
    const [a, b] = cluster.nodes;
    const alice = await client(a!.url);
    const bob = await client(b!.url);
    const aj = await alice.join('phoenix');
    const bj = await bob.join('phoenix');
    await b!.kill();
    const reborn = await startNode({ ...cluster.options, nodeId: b!.id });
    expect(await alice.waitForType('peer-left', () => true, 10_000)).toMatchObject({
      peer: { id: bj.self.id },
      reason: 'disconnected',
    });
    const newcomer = await client(reborn.url);
    expect((await newcomer.join('phoenix')).peers.map((p) => p.id)).toEqual([aj.self.id]);
  });
});
