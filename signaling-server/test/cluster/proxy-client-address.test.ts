// Clients behind a real HAProxy: per-address limits count each client, not the proxy, whether the
// proxy names the client with the PROXY protocol v2 or with X-Forwarded-For; what a client says
// about its own address (a header, a PROXY header sent straight to a node) changes nothing.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, startCluster, type RunningNode } from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { startHaproxy, type ClientAddressMode, type Haproxy } from '../support/haproxy.js';

const clients = new ClientTracker();
let node: RunningNode;

beforeAll(async () => {
  const cluster = await startCluster(1, {
    env: {
      // HAProxy connects to the node from 127.0.0.1; the clients come from other loopback addresses.
      TRUSTED_PROXIES: '127.0.0.1/32',
      MAX_CONNECTIONS_PER_IP: '3',
      ADDRESS_WRITES_PER_SEC: '1',
      ADDRESS_WRITES_BURST: '3',
    },
  });
  [node] = cluster.nodes as [RunningNode];
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
});

/** Each test's clients come from addresses no other test used, so counts never carry over. */
let nextHost = 2;
const freshAddress = () => `127.0.${Math.floor(nextHost / 250)}.${(nextHost++ % 250) + 1}`;

const spoofedHeaders = () => ({
  'X-Forwarded-For': `198.51.100.${randomBytes(1)[0]}`,
  Forwarded: `for=203.0.113.${randomBytes(1)[0]}`,
});

describe.each<ClientAddressMode>(['proxy-v2', 'forwardfor'])('behind HAProxy (%s)', (mode) => {
  let lb: Haproxy;
  beforeAll(async () => {
    lb = await startHaproxy([node.port], mode);
  });
  afterAll(async () => {
    clients.dropAll();
    await lb.stop();
  });

  it("gives each client its own connection limit: one client cannot take the node's sockets", async () => {
    const greedy = freshAddress();
    const other = freshAddress();
    for (let i = 0; i < 3; i++) await clients.connect(lb.url, '', undefined, greedy);
    await expect(clients.connect(lb.url, '', undefined, greedy)).rejects.toThrow('HTTP 429');
    for (let i = 0; i < 3; i++) await clients.connect(lb.url, '', undefined, other);
  });

  it('ignores the X-Forwarded-For and Forwarded headers a client sends itself', async () => {
    const spoofer = freshAddress();
    for (let i = 0; i < 3; i++) await clients.connect(lb.url, '', spoofedHeaders(), spoofer);
    await expect(clients.connect(lb.url, '', spoofedHeaders(), spoofer)).rejects.toThrow('HTTP 429');
  });

  it('charges joins to the client that sends them, not to everyone behind the proxy', async () => {
    const busy = await clients.connect(lb.url, '', undefined, freshAddress());
    const calm = await clients.connect(lb.url, '', undefined, freshAddress());
    // Sent at once, so the one-per-second refill cannot change the count: three pass, one does not.
    const replies = await Promise.all(Array.from({ length: 4 }, () => busy.request({ type: 'join', room: newRoom('rate') })));
    expect(replies.map((r) => r.type).sort()).toEqual(['error', 'joined', 'joined', 'joined']);
    expect(replies.find((r) => r.type === 'error')).toMatchObject({ code: 'rate-limited' });
    await calm.join(newRoom('calm'));
  });
});

describe('straight to the node, from a peer that is not a trusted proxy', () => {
  it('ignores forwarded-for headers', async () => {
    const spoofer = freshAddress();
    for (let i = 0; i < 3; i++) await clients.connect(node, '', spoofedHeaders(), spoofer);
    await expect(clients.connect(node, '', spoofedHeaders(), spoofer)).rejects.toThrow('HTTP 429');
  });

  it('ignores a PROXY protocol header', async () => {
    const spoofer = freshAddress();
    const statuses: string[] = [];
    const sockets = [];
    for (let i = 0; i < 4; i++) {
      const { status, socket } = await upgradeWithProxyHeader(node.port, spoofer, `198.51.100.${10 + i}`);
      statuses.push(status);
      sockets.push(socket);
    }
    for (const s of sockets) s.destroy();
    expect(statuses).toEqual(['101', '101', '101', '429']);
  });
});

/** A raw WebSocket upgrade that starts with a PROXY v2 header claiming to come from `claimed`. */
function upgradeWithProxyHeader(port: number, localAddress: string, claimed: string) {
  const signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const src = claimed.split('.').map(Number);
  // Version 2, PROXY command; TCP over IPv4; 12 bytes of addresses and ports.
  const header = Buffer.concat([signature, Buffer.from([0x21, 0x11, 0, 12, ...src, 127, 0, 0, 1, 0x30, 0x39, 0x1f, 0x90])]);
  const request =
    `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  return new Promise<{ status: string; socket: ReturnType<typeof connect> }>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress }, () =>
      socket.write(Buffer.concat([header, Buffer.from(request)])),
    );
    let reply = '';
    const timer = setTimeout(() => reject(new Error(`no upgrade reply: ${reply}`)), 5000);
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      const line = reply.indexOf('\r\n');
      if (line < 0) return;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve({ status: reply.slice(0, line).split(' ')[1] ?? '', socket });
    });
    socket.once('error', reject);
  });
}
