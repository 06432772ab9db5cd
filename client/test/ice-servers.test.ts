// The client keeps each room's ICE servers fresh: the ones from `joined`, renewed before they
// expire and after a re-join, each time announced with an `ice-servers` event.
import { expect, it } from 'vitest';
import { FakeRooms, makeClient, startNode } from './helpers.js';

const usernames = (servers: { username?: string }[] | undefined) => (servers ?? []).map((s) => s.username);

it('joined ICE servers are in the room snapshot and renewed at 80 % of their lifetime', async () => {
  const node = await startNode(undefined, { iceServersTtlMs: 500 });
  const client = makeClient(node.url);
  await client.connect();
  const started = Date.now();
  const joined = await client.join('call');
  expect(usernames(joined.iceServers)).toEqual([`${node.id}.1:${joined.self.id}`]);

  const renewed = await client.once('ice-servers');
  expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  expect(renewed).toEqual({
    room: 'call',
    iceServers: [{ urls: ['turn:turn.test'], username: `${node.id}.2:${joined.self.id}`, credential: 'c' }],
  });
  expect(usernames(client.room('call')!.iceServers)).toEqual([`${node.id}.2:${joined.self.id}`]);
  // And again from the renewed lifetime, for as long as the room is joined.
  expect(usernames((await client.once('ice-servers')).iceServers)).toEqual([`${node.id}.3:${joined.self.id}`]);
  expect(node.frames.filter((f) => f.type === 'ice-servers')).toHaveLength(2);
});

it('a re-join after a lost connection brings fresh ICE servers and says so', async () => {
  const rooms = new FakeRooms();
  const first = await startNode(rooms, { iceServersTtlMs: 60_000 });
  const second = await startNode(rooms, { iceServersTtlMs: 60_000 });
  const client = makeClient([first.url, second.url]);
  await client.connect();
  const joined = await client.join('call');
  const renewed = client.once('ice-servers');
  first.killConnections();
  const event = await renewed;
  expect(event.room).toBe('call');
  expect(usernames(event.iceServers)).not.toEqual(usernames(joined.iceServers));
  expect(client.room('call')!.iceServers).toEqual(event.iceServers);
  expect(client.room('call')!.self.id).toBe(joined.self.id);
});

it('refreshIceServers asks on demand; a cluster without ICE servers gives an empty list', async () => {
  const withIce = await startNode(undefined, { iceServersTtlMs: 60_000 });
  const a = makeClient(withIce.url);
  await a.connect();
  const { self } = await a.join('call');
  expect(usernames(await a.refreshIceServers('call'))).toEqual([`${withIce.id}.2:${self.id}`]);

  const plain = await startNode();
  const b = makeClient(plain.url);
  await b.connect();
  expect((await b.join('call')).iceServers).toEqual([]);
  expect(await b.refreshIceServers('call')).toEqual([]);
  await expect(b.refreshIceServers('elsewhere')).rejects.toMatchObject({ code: 'not-joined' });
});
