// A refused connection as a browser sees it: Chromium hides the HTTP status of a refused upgrade
// (the page gets a bare 1006), so a node refuses a browser inside the WebSocket, and the SDK in the
// page can tell an origin not allowed (stop) from an address at its limit (retry later).
/// <reference lib="dom" />
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import NodeWebSocket from 'ws';
import { launchChromium, type Chromium } from '../support/chromium.js';
import { freePort, killAllNodes, startCluster, type RunningNode } from '../support/cluster.js';

let browser: Chromium;
let page: Page;
const held: NodeWebSocket[] = [];

beforeAll(async () => {
  browser = await launchChromium();
});

afterEach(async () => {
  for (const ws of held.splice(0)) ws.terminate();
  await killAllNodes();
});

afterAll(async () => {
  await browser?.close();
});

/** The SDK as a page of the node imports it from `/client/`. */
type SdkWindow = Window & {
  SignalingClient: new (options: object) => {
    connect(): Promise<unknown>;
    once(type: string): Promise<unknown>;
  };
  refused: Promise<unknown>;
  connected: Promise<unknown>;
};

/** A page of the node that opens no socket of its own, with the SDK loaded as `window.SignalingClient`. */
async function pageOf(node: RunningNode): Promise<Page> {
  page = await browser.context.newPage();
  await page.goto(`${node.httpUrl}/healthz`);
  await page.addScriptTag({
    type: 'module',
    content: "import { SignalingClient } from '/client/index.js'; window.SignalingClient = SignalingClient;",
  });
  await page.waitForFunction(() => 'SignalingClient' in window);
  return page;
}

/** What the page's own WebSocket sees: the frames it got and its close code. */
const rawSocketIn = (p: Page, url: string) =>
  p.evaluate(
    (u) =>
      new Promise<{ frames: unknown[]; code: number }>((resolve) => {
        const ws = new WebSocket(u);
        const frames: unknown[] = [];
        ws.onmessage = (e) => frames.push(JSON.parse(String(e.data)));
        ws.onclose = (e) => resolve({ frames, code: e.code });
      }),
    url,
  );

it('an origin not allowed: the page reads forbidden-origin and 1008, and the SDK stops with connect-failed', async () => {
  const { nodes } = await startCluster(1, { env: { ALLOWED_ORIGINS: 'https://app.example' } });
  const node = nodes[0]!;
  const p = await pageOf(node);

  expect(await rawSocketIn(p, node.url)).toEqual({
    frames: [{ type: 'error', code: 'forbidden-origin', message: 'origin not allowed' }],
    code: 1008,
  });
  const outcome = await p.evaluate(async (url) => {
    const client = new (window as unknown as SdkWindow).SignalingClient({
      url,
      reconnect: { initialDelayMs: 20, maxDelayMs: 40 },
    });
    return client.connect().then(
      () => 'connected',
      (e: { code: string; failure: unknown }) => ({ code: e.code, failure: e.failure }),
    );
  }, node.url);
  expect(outcome).toEqual({
    code: 'connect-failed',
    failure: { message: 'forbidden-origin: origin not allowed', closeCode: 1008, code: 'forbidden-origin' },
  });
});

it('an address at its connection limit: the page reads rate-limited and 1013, and the SDK connects once a place is free', async () => {
  const port = await freePort();
  const { nodes } = await startCluster(1, {
    port,
    env: { ALLOWED_ORIGINS: `http://127.0.0.1:${port}`, MAX_CONNECTIONS_PER_IP: '2' },
  });
  const node = nodes[0]!;
  const p = await pageOf(node);
  for (let i = 0; i < 2; i++) {
    const ws = new NodeWebSocket(node.url);
    held.push(ws);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  }

  expect(await rawSocketIn(p, node.url)).toEqual({
    frames: [{ type: 'error', code: 'rate-limited', message: 'too many connections from this address' }],
    code: 1013,
  });
  await p.evaluate((url) => {
    const w = window as unknown as SdkWindow;
    const client = new w.SignalingClient({ url, reconnect: { initialDelayMs: 50, maxDelayMs: 100 } });
    w.refused = client.once('reconnecting');
    w.connected = client.connect();
  }, node.url);
  const refused = await p.evaluate(() => (window as unknown as SdkWindow).refused);
  expect(refused).toMatchObject({
    reason: 'connect-failed',
    failure: { code: 'rate-limited', closeCode: 1013, message: 'rate-limited: too many connections from this address' },
  });
  held.shift()!.close();
  expect(await p.evaluate(() => (window as unknown as SdkWindow).connected)).toEqual({ node: node.id });
});
