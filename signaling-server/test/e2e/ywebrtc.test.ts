// y-webrtc's own client, unchanged, on the cluster: Chromium pages with yjs and a WebrtcProvider
// whose signaling URL is a node's YWEBRTC_PATH, each page on a different node, converge on one
// Y.Doc over WebRTC data channels; a page that joins late gets the document too.
// Each page comes from its own origin (its own port): pages of one origin would also sync over a
// BroadcastChannel, without the signaling server. Needs Chromium (see support/chromium.ts) and a
// built tree (npm run build).
/// <reference lib="dom" />
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type * as Yjs from 'yjs';
import type { WebrtcProvider as Provider } from 'y-webrtc';
import { launchChromium, WAIT, type Chromium } from '../support/chromium.js';
import { killAllNodes, metric, startCluster, uniqueName, type RunningNode } from '../support/cluster.js';

declare global {
  interface Window {
    Y: typeof Yjs;
    WebrtcProvider: typeof Provider;
    doc: Yjs.Doc;
    provider: Provider;
  }
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PATH = '/y-webrtc';
let browser: Chromium;
let nodes: RunningNode[];
const servers: Server[] = [];

/** One HTTP server per origin, serving a blank page and the bundle of yjs and y-webrtc. */
async function serveOrigin(bundle: string): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url === '/bundle.js') return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script src="/bundle.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

beforeAll(async () => {
  const cluster = await startCluster(2, { env: { YWEBRTC_PATH: PATH } });
  nodes = cluster.nodes;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  for (const server of servers) server.close();
  await killAllNodes();
});

/** A page from its own origin with a Y.Doc in `room`, signalling through `node` only. */
async function openDoc(origin: string, node: RunningNode, room: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (error) => console.error('[y-webrtc page] page error:', error.message));
  await page.goto(origin);
  await page.waitForFunction(() => typeof window.WebrtcProvider === 'function', null, WAIT);
  await page.evaluate(
    ([url, r]) => {
      window.doc = new window.Y.Doc();
      // No STUN servers: the pages reach each other over loopback host candidates.
      window.provider = new window.WebrtcProvider(r, window.doc, { signaling: [url], peerOpts: { config: { iceServers: [] } } });
    },
    [`ws://127.0.0.1:${node.port}${PATH}`, room] as const,
  );
  return page;
}

const textOf = (page: Page) => page.evaluate(() => window.doc.getText('notes').toString());
const untilText = (page: Page, text: string) =>
  page.waitForFunction((t) => window.doc.getText('notes').toString() === t, text, WAIT);
const webrtcPeers = (page: Page) => page.evaluate(() => window.provider.room!.webrtcConns.size);

it(
  'pages signalling through different nodes converge on one document, and a late page gets it',
  { timeout: 120_000 },
  async () => {
    const [a, b] = nodes as [RunningNode, RunningNode];
    const bundled = await build({
      absWorkingDir: ROOT,
      stdin: {
        contents:
          "import * as Y from 'yjs'; import { WebrtcProvider } from 'y-webrtc'; window.Y = Y; window.WebrtcProvider = WebrtcProvider;",
        resolveDir: ROOT,
      },
      bundle: true,
      platform: 'browser',
      format: 'iife',
      write: false,
      logLevel: 'silent',
    });
    const bundle = bundled.outputFiles[0]!.text;
    const room = uniqueName('yjs-');

    const ada = await openDoc(await serveOrigin(bundle), a, room);
    const grace = await openDoc(await serveOrigin(bundle), b, room);
    await ada.evaluate(() => window.doc.getText('notes').insert(0, 'Ada wrote this. '));
    await untilText(grace, 'Ada wrote this. ');
    await grace.evaluate(() => window.doc.getText('notes').insert(window.doc.getText('notes').length, 'Grace added this.'));
    await untilText(ada, 'Ada wrote this. Grace added this.');
    expect(await webrtcPeers(ada)).toBe(1);
    expect(await webrtcPeers(grace)).toBe(1);

    // The late page signals through node A while Grace is on node B; it is sent the whole document.
    const late = await openDoc(await serveOrigin(bundle), a, room);
    await untilText(late, 'Ada wrote this. Grace added this.');
    await late.evaluate(() => window.doc.getText('notes').insert(0, '> '));
    await untilText(grace, '> Ada wrote this. Grace added this.');
    await untilText(ada, '> Ada wrote this. Grace added this.');
    expect(await textOf(late)).toBe('> Ada wrote this. Grace added this.');

    // The signaling went through the cluster's endpoint on both nodes.
    for (const node of [a, b]) {
      expect(await metric(node, 'signaling_compat_messages_received_total{protocol="y-webrtc",type="publish"}')).toBeGreaterThan(
        0,
      );
    }
  },
);
