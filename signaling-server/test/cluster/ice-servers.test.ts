// ICE servers from the cluster: every `joined` carries STUN and TURN URLs with fresh TURN
// credentials bound to the participant, a resume on another node gets new ones, `ice-servers`
// refreshes them, and neither the secret nor a credential ever reaches a node's log.
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, startCluster, startNode, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import type { TestClient } from '../support/test-client.js';

const TURN_SECRET = 'cluster-test-turn-secret-0123456789';
const TTL_SECONDS = 600;
const STUN = 'stun:stun.example.org:3478';
const TURN = ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349'];
let a: RunningNode;
let b: RunningNode;
let common: Parameters<typeof startNode>[0];
const clients = new ClientTracker();
/** Every credential handed out in this file, to look for in the logs at the end. */
const issued: string[] = [];

beforeAll(async () => {
  const cluster = await startCluster(2, {
    env: {
      ICE_SERVERS: [STUN, ...TURN].join(','),
      TURN_SECRET,
      TURN_TTL: String(TTL_SECONDS),
      LOG_LEVEL: 'trace',
      RESUME_GRACE_MS: '30000',
    },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
  common = { databaseUrl: cluster.databaseUrl, redisUrl: cluster.options.redisUrl, redisPrefix: cluster.redisPrefix };
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

type IceServers = { urls: string[]; username?: string; credential?: string }[];

/** Checks a list against what a TURN server with TURN_SECRET accepts, and returns the TURN username. */
function expectValidFor(participantId: string, iceServers: IceServers | undefined, ttlMs: number | undefined): string {
  expect(iceServers).toHaveLength(2);
  expect(iceServers![0]).toEqual({ urls: [STUN] });
  const turn = iceServers![1]!;
  expect(turn.urls).toEqual(TURN);
  const [expiry, identity] = turn.username!.split(':');
  expect(identity).toBe(participantId);
  const nowSeconds = Date.now() / 1000;
  expect(Number(expiry)).toBeGreaterThan(nowSeconds + TTL_SECONDS - 30);
  expect(Number(expiry)).toBeLessThanOrEqual(nowSeconds + TTL_SECONDS + 1);
  expect(turn.credential).toBe(createHmac('sha1', TURN_SECRET).update(turn.username!).digest('base64'));
  expect(ttlMs).toBeGreaterThan((TTL_SECONDS - 30) * 1000);
  expect(ttlMs).toBeLessThanOrEqual(TTL_SECONDS * 1000);
  issued.push(turn.credential!);
  return turn.username!;
}

async function refresh(c: TestClient, room: string) {
  const reply = await c.request({ type: 'ice-servers', room });
  if (reply.type !== 'ice-servers') throw new Error(`ice-servers failed: ${JSON.stringify(reply)}`);
  return reply;
}

describe('ICE servers', () => {
  it('joined carries TURN credentials bound to the participant; each participant gets its own', async () => {
    const room = newRoom('ice');
    const ada = await clients.connect(a);
    const grace = await clients.connect(b);
    const adaJoined = await ada.join(room, { name: 'ada' });
    const graceJoined = await grace.join(room, { name: 'grace' });
    const adaUser = expectValidFor(adaJoined.self.id, adaJoined.iceServers, adaJoined.iceServersTtlMs);
    const graceUser = expectValidFor(graceJoined.self.id, graceJoined.iceServers, graceJoined.iceServersTtlMs);
    expect(adaUser).not.toBe(graceUser);
  });

  it('a resume on another node gets fresh credentials for the same participant', async () => {
    const room = newRoom('ice');
    const first = await clients.connect(a);
    const joined = await first.join(room);
    const before = expectValidFor(joined.self.id, joined.iceServers, joined.iceServersTtlMs);
    first.drop();
    const second = await clients.connect(b);
    const resumed = await second.join(room, { resume: joined.resume });
    expect(resumed).toMatchObject({ resumed: true, self: { id: joined.self.id } });
    const after = expectValidFor(joined.self.id, resumed.iceServers, resumed.iceServersTtlMs);
    expect(Number(after.split(':')[0])).toBeGreaterThanOrEqual(Number(before.split(':')[0]));
  });

  it('ice-servers refreshes them for a joined room, even right behind the join', async () => {
    const room = newRoom('ice');
    const c = await clients.connect(a);
    // Sent before the join is answered: it waits for the join like any request for the room.
    c.send({ type: 'join', id: 'j', room });
    const reply = await refresh(c, room);
    const joined = c.seen((m) => m.type === 'joined' && m.id === 'j')[0];
    expect(joined).toBeDefined();
    expect(reply.room).toBe(room);
    expectValidFor(joined!.type === 'joined' ? joined!.self.id : '', reply.iceServers, reply.iceServersTtlMs);
  });

  it('ice-servers for a room not joined, or without a room, is refused', async () => {
    const c = await clients.connect(b);
    expect(await c.request({ type: 'ice-servers', room: newRoom('ice') })).toMatchObject({ type: 'error', code: 'not-joined' });
    expect(await c.request({ type: 'ice-servers' })).toMatchObject({ type: 'error', code: 'bad-request' });
  });

  it('a node without ICE_SERVERS sends no iceServers in joined and an empty list on request', async () => {
    const plain = await startNode(common);
    const c = await clients.connect(plain);
    const room = newRoom('ice');
    const joined = await c.join(room);
    expect(joined.iceServers).toBeUndefined();
    expect(joined.iceServersTtlMs).toBeUndefined();
    expect(await refresh(c, room)).toEqual({ type: 'ice-servers', id: expect.anything(), room, iceServers: [] });
    await plain.kill();
  });

  it('neither the TURN secret nor any credential appears in the logs, at trace level', () => {
    expect(issued.length).toBeGreaterThanOrEqual(5);
    const text = [...a.logs, ...b.logs].map((l) => JSON.stringify(l)).join('\n');
    expect(a.logs.some((l) => l.msg === 'handing out ICE servers')).toBe(true);
    expect(text).not.toContain(TURN_SECRET);
    for (const credential of issued) expect(text).not.toContain(credential);
  });
});
