// Bookkeeping shared by the cluster tests: every TestClient a test opens, dropped at the end with
// the protocol violations they saw; and unique room names.
import type { RunningNode } from './cluster.js';
import { TestClient } from './test-client.js';

export class ClientTracker {
  private readonly clients: TestClient[] = [];

  async connect(
    node: RunningNode | string,
    query = '',
    headers?: Record<string, string>,
    localAddress?: string,
  ): Promise<TestClient> {
    const url = typeof node === 'string' ? node : node.url;
    const client = await TestClient.connect(`${url}${query}`, { headers, localAddress });
    this.clients.push(client);
    return client;
  }

  /** Alice on one node and Bob on another in `room`, each having seen the other. */
  async pairUp(a: RunningNode, b: RunningNode, room: string) {
    const alice = await this.connect(a);
    const bob = await this.connect(b);
    const aj = await alice.join(room);
    const bj = await bob.join(room);
    await alice.waitForType('peer-joined', (m) => m.peer.id === bj.self.id);
    return { alice, bob, aj, bj };
  }

  /** Drops every client opened so far; returns the frames that broke the server message schemas. */
  dropAll(): string[] {
    const violations = this.clients.flatMap((c) => c.violations);
    for (const c of this.clients.splice(0)) c.drop();
    return violations;
  }
}

let roomCounter = 0;
export const newRoom = (prefix = 'room'): string => `${prefix}-${Date.now().toString(36)}-${roomCounter++}`;
