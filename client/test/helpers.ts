// Shared set-up of the client tests: clients and fake nodes created here are closed after each test.
import { afterEach } from 'vitest';
import { WebSocket } from 'ws';
import { SignalingClient, type SignalingClientOptions } from '../src/index.js';
import { FakeNode, FakeRooms, type FakeNodeOptions } from './fake-node.js';

const clients: SignalingClient[] = [];
const nodes: FakeNode[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

export function makeClient(url: string | string[], options: Partial<SignalingClientOptions> = {}): SignalingClient {
  const client = new SignalingClient({
    url,
    WebSocket,
    requestTimeoutMs: 2_000,
    reconnect: { initialDelayMs: 10, maxDelayMs: 40 },
    ...options,
  });
  clients.push(client);
  return client;
}

export async function startNode(rooms?: FakeRooms, options?: FakeNodeOptions): Promise<FakeNode> {
  const node = await FakeNode.start(rooms, options);
  nodes.push(node);
  return node;
}

/** Captures every event of the given types, in order, as [type, event] pairs. */
export function record<K extends string>(client: SignalingClient, types: K[]): Array<[K, unknown]> {
  const log: Array<[K, unknown]> = [];
  for (const type of types) client.on(type as never, (event: unknown) => log.push([type, event]));
  return log;
}

export { FakeNode, FakeRooms };
