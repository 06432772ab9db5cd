// Connecting goes wrong: nothing listens, a wrong path, an origin not allowed, too many
// connections from one address, a bad token. The SDK says why and stops after its attempts, and a
// browser (which cannot read the HTTP status of a refused upgrade) is told inside the WebSocket.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { SignalingClientOptions, SignalingError } from '../../../client/src/index.js';
import { freePort, killAllNodes, startCluster, type RunningNode } from '../support/cluster.js';
import { SdkClients, recordEvents } from '../support/sdk-clients.js';

const SECRET = 'connect-failures-secret-long-enough-for-hs256';
const ALLOWED = 'https://app.example';
let node: RunningNode;
const sdk = new SdkClients();
const held: WebSocket[] = [];

beforeAll(async () => {
  const cluster = await startCluster(1, {
    env: { AUTH_JWT_SECRET: SECRET, ALLOWED_ORIGINS: ALLOWED, MAX_CONNECTIONS_PER_IP: '3' },
  });
  node = cluster.nodes[0]!;
});

afterEach(() => {
  sdk.closeAll();
  for (const ws of held.splice(0)) ws.terminate();
});

afterAll(async () => {
  await killAllNodes();
});

/** A `ws` WebSocket that sends the headers a browser would, from a chosen loopback address. */
function webSocketWith(opts: { origin?: string; localAddress?: string }): NonNullable<SignalingClientOptions['WebSocket']> {
  class Configured extends WebSocket {
    constructor(url: string) {
      super(url, opts);
    }
  }
  return Configured as unknown as NonNullable<SignalingClientOptions['WebSocket']>;
}

const fast = { reconnect: { initialDelayMs: 20, maxDelayMs: 40 } };

/** Holds `count` open sockets from `localAddress`, so that the address is at its connection limit. */
async function fillAddress(localAddress: string, count = 3): Promise<void> {
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(node.url, { localAddress });
    held.push(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
  }
}

describe('the SDK says why connecting failed, and stops after maxConnectAttempts', () => {
  it('nothing listens on the port: connection refused', async () => {
    const client = sdk.make(`ws://127.0.0.1:${await freePort()}/ws`, { ...fast, maxConnectAttempts: 3 });
    const log = recordEvents(client, ['reconnecting', 'closed']);

    const error: SignalingError = await client.connect().then(
      () => expect.fail('connected to a port nothing listens on'),
      (e) => e,
    );

    expect(error).toMatchObject({ code: 'connect-failed', failure: { closeCode: 1006 } });
    expect(error.message).toMatch(/^gave up after 3 connection attempts: connect ECONNREFUSED/);
    expect(log.map(([type, e]) => (type === 'reconnecting' ? `${e.reason}` : type))).toEqual([
      'connect-failed',
      'connect-failed',
      'closed',
    ]);
    expect(log[0]![1]).toMatchObject({ failure: { message: expect.stringMatching(/ECONNREFUSED/) } });
    expect(client.state).toBe('closed');
    expect(client.closedWith?.code).toBe('connect-failed');
  });

  it('a wrong path: the HTTP status of the upgrade', async () => {
    const client = sdk.make(`${node.httpUrl.replace('http', 'ws')}/not-the-endpoint`, { ...fast, maxConnectAttempts: 2 });
    await expect(client.connect()).rejects.toMatchObject({
      code: 'connect-failed',
      failure: { status: 404, message: 'the upgrade was answered with HTTP 404' },
    });
  });

  it('too many connections from the address: HTTP 429 for a client without Origin', async () => {
    await fillAddress('127.0.0.41');
    const client = sdk.make(node.url, {
      ...fast,
      maxConnectAttempts: 2,
      WebSocket: webSocketWith({ localAddress: '127.0.0.41' }),
    });
    await expect(client.connect()).rejects.toMatchObject({ code: 'connect-failed', failure: { status: 429 } });
  });

  it('a bad token ends as unauthorized: connect() rejects, and so does everything after', async () => {
    const client = sdk.make(node.url, { ...fast, token: 'not-a-jwt' });
    const closed = client.once('closed');
    await expect(client.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(await closed).toMatchObject({ code: 1008, error: { code: 'unauthorized' } });
    await expect(client.join('room')).rejects.toMatchObject({ code: 'unauthorized' });
  });
});

describe('a browser is refused inside the WebSocket, with a protocol error and a close code', () => {
  it('an origin not allowed: `error` forbidden-origin and close 1008, and the SDK stops at once', async () => {
    const raw = new WebSocket(node.url, { origin: 'https://evil.example' });
    const frames: unknown[] = [];
    raw.on('message', (data) => frames.push(JSON.parse(data.toString())));
    const [code] = await new Promise<[number, string]>((resolve) => raw.once('close', (c, r) => resolve([c, r.toString()])));
    expect(code).toBe(1008);
    expect(frames).toEqual([{ type: 'error', code: 'forbidden-origin', message: 'origin not allowed' }]);

    const client = sdk.make(node.url, { ...fast, WebSocket: webSocketWith({ origin: 'https://evil.example' }) });
    const log = recordEvents(client, ['welcome', 'reconnecting', 'closed']);
    await expect(client.connect()).rejects.toMatchObject({
      code: 'connect-failed',
      failure: { code: 'forbidden-origin', closeCode: 1008 },
    });
    expect(log.map(([type]) => type)).toEqual(['closed']);
  });

  it('too many connections from the address: `error` rate-limited and close 1013, retried until a place is free', async () => {
    await fillAddress('127.0.0.42');
    const raw = new WebSocket(node.url, { origin: ALLOWED, localAddress: '127.0.0.42' });
    const frames: unknown[] = [];
    raw.on('message', (data) => frames.push(JSON.parse(data.toString())));
    const code = await new Promise<number>((resolve) => raw.once('close', resolve));
    expect(code).toBe(1013);
    expect(frames).toEqual([{ type: 'error', code: 'rate-limited', message: 'too many connections from this address' }]);

    const client = sdk.make(node.url, { ...fast, WebSocket: webSocketWith({ origin: ALLOWED, localAddress: '127.0.0.42' }) });
    const refused = client.once('reconnecting');
    const connected = client.connect();
    expect(await refused).toMatchObject({ reason: 'connect-failed', failure: { code: 'rate-limited', closeCode: 1013 } });
    held.shift()!.close();
    expect(await connected).toEqual({ node: node.id });
  });
});
