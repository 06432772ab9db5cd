// The demo page in a real browser: two pages on two different nodes of one cluster set up a WebRTC
// call through it, and the call can still renegotiate after one of the nodes restarts.
// Needs Debian's Chromium at /usr/bin/chromium (or CHROMIUM_PATH; the global setup installs it) and a
// built tree (npm run build).
// UPDATE_SCREENSHOTS=1 also writes the demo's desktop and phone screenshots to docs/images/.
/// <reference lib="dom" />
import { mkdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchChromium, openDemo as openDemoIn, selfId, waitForChannelOpen, WAIT, type Chromium } from '../support/chromium.js';
import { createTestDatabase, killAllNodes, startNode, testRedisUrl, uniqueName } from '../support/cluster.js';

const IMAGES = fileURLToPath(new URL('../../../docs/images/', import.meta.url));

let browser: Chromium;

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await killAllNodes();
});

/**
 * A port to give a node explicitly. A node started on port 0 cannot get its port back while the
 * browser still holds half-closed keep-alive connections to it (the listener binds without
 * SO_REUSEADDR then), so the node this test restarts gets a fixed one from the start.
 */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const openDemo = (httpUrl: string, room: string, name: string) => openDemoIn(browser.context, httpUrl, room, name);

const chatLines = (page: Page, label: string) =>
  page.evaluate((l) => window.demo.page.log.filter((e) => e.label === l && e.from !== null).map((e) => e.text), label);

async function waitForChat(page: Page, text: string, label = 'chat'): Promise<void> {
  await page.waitForFunction(
    ([t, l]) => window.demo.page.log.some((e) => e.text === t && e.label === l && e.from !== null),
    [text, label] as const,
    WAIT,
  );
}

const iceUfrag = (page: Page, peerId: string) =>
  page.evaluate((p) => /a=ice-ufrag:(\S+)/.exec(window.demo.page.calls.get(p)!.pc.currentRemoteDescription!.sdp)?.[1], peerId);

it('two pages on different nodes call each other, and renegotiate after one node restarts', { timeout: 180_000 }, async () => {
  const common = {
    databaseUrl: await createTestDatabase(),
    redisUrl: testRedisUrl(),
    redisPrefix: `${uniqueName('t')}:`,
    env: { RESUME_GRACE_MS: '30000' },
  };
  const nodeA = await startNode(common); // alone first: it runs the migrations
  const nodeB = await startNode({ ...common, port: await freePort() });
  const room = uniqueName('e2e-');

  const ada = await openDemo(nodeA.httpUrl, room, 'Ada');
  const grace = await openDemo(nodeB.httpUrl, room, 'Grace');
  expect(await ada.evaluate(() => window.demo.client.node)).toBe(nodeA.id);
  expect(await grace.evaluate(() => window.demo.client.node)).toBe(nodeB.id);
  const adaId = await selfId(ada);
  const graceId = await selfId(grace);
  await ada.waitForSelector(`#peers li[data-peer="${graceId}"]`, WAIT);

  // The call: offer, answer and candidates all cross from one node to the other.
  await ada.click(`#peers li[data-peer="${graceId}"] button[data-action="call"]`);
  await waitForChannelOpen(ada, graceId, 'chat');
  await waitForChannelOpen(grace, adaId, 'chat');
  await ada.fill('#message', 'Hello Grace, through the cluster');
  await ada.click('#send');
  await waitForChat(grace, 'Hello Grace, through the cluster');
  await grace.fill('#message', 'Hi Ada!');
  await grace.click('#send');
  await waitForChat(ada, 'Hi Ada!');

  // Shared state edited on one node shows on the other.
  await ada.fill('#topic', 'Launch checklist');
  await ada.click('#topic-form button');
  await grace.waitForFunction(
    () => (document.querySelector('#topic') as HTMLInputElement).value === 'Launch checklist',
    null,
    WAIT,
  );

  if (process.env.UPDATE_SCREENSHOTS === '1') {
    await grace.fill('#note', 'Ship the client SDK docs');
    await grace.click('#note-form button');
    await ada.waitForSelector('#notes li', WAIT);
    await Promise.all([ada.click('#camera'), grace.click('#camera')]);
    const bothVideos = () => Array.from(document.querySelectorAll('video')).filter((v) => v.videoWidth > 0).length >= 2;
    await ada.waitForFunction(bothVideos, null, WAIT);
    await grace.setViewportSize({ width: 390, height: 844 });
    await grace.waitForFunction(bothVideos, null, WAIT);
    mkdirSync(IMAGES, { recursive: true });
    await ada.screenshot({ path: join(IMAGES, 'demo-desktop.png') });
    await grace.screenshot({ path: join(IMAGES, 'demo-phone.png'), fullPage: true });
  }

  // Restart Grace's node. Her page reconnects to it and resumes the same participant.
  const ufragBefore = await iceUfrag(ada, graceId);
  await nodeB.stop();
  await grace.waitForFunction(() => window.demo.client.state === 'reconnecting', null, WAIT);
  const restarted = await startNode({ ...common, port: nodeB.port });
  await grace.waitForFunction((id) => window.demo.client.state === 'open' && window.demo.client.node === id, restarted.id, WAIT);
  expect(await selfId(grace)).toBe(graceId);

  // Renegotiation from Ada's side: a second data channel needs a new offer/answer via the cluster.
  await ada.evaluate((p) => void window.demo.page.calls.get(p)!.openChannel('after-restart'), graceId);
  await waitForChannelOpen(ada, graceId, 'after-restart');
  await waitForChannelOpen(grace, adaId, 'after-restart');
  await ada.evaluate(() => window.demo.sendChat('sent after the restart', 'after-restart'));
  await waitForChat(grace, 'sent after the restart', 'after-restart');

  // And from Grace's side, through the restarted node: an ICE restart brings new credentials.
  await grace.evaluate((p) => window.demo.page.calls.get(p)!.restartIce(), adaId);
  await ada.waitForFunction(
    ([p, before]) => {
      const sdp = window.demo.page.calls.get(p)?.pc.currentRemoteDescription?.sdp ?? '';
      return !sdp.includes(`a=ice-ufrag:${before}`) && window.demo.page.calls.get(p)?.pc.signalingState === 'stable';
    },
    [graceId, ufragBefore!] as const,
    WAIT,
  );
  await grace.waitForFunction((p) => window.demo.page.calls.get(p)?.pc.connectionState === 'connected', adaId, WAIT);
  await grace.fill('#message', 'still here');
  await grace.click('#send');
  await waitForChat(ada, 'still here');
  expect(await chatLines(ada, 'chat')).toEqual(['Hello Grace, through the cluster', 'Hi Ada!', 'still here']);
});
