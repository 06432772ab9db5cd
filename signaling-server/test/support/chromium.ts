// Debian's Chromium driven by playwright-core for the browser tests, and the demo page's test
// hooks (`window.demo`, see signaling-server/public/app.js). Needs /usr/bin/chromium (or
// CHROMIUM_PATH), which the global setup installs (system-packages.ts).
/// <reference lib="dom" />
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { SignalingClient } from '../../../client/src/index.js';
import { SYSTEM_PROGRAMS, systemProgramPath } from './system-packages.js';

/** What signaling-server/public/app.js exposes as `window.demo`. */
declare global {
  interface Window {
    demo: {
      client: SignalingClient;
      page: {
        room: string | null;
        calls: Map<
          string,
          {
            pc: RTCPeerConnection;
            channels: Map<string, RTCDataChannel>;
            openChannel(label: string): RTCDataChannel;
            restartIce(): void;
          }
        >;
        log: { from: string | null; text: string; label: string }[];
      };
      sendChat(text: string, label?: string): number;
    };
  }
}

export const WAIT = { timeout: 20_000 };

export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with fake media, allowed to use loopback addresses for WebRTC. */
export async function launchChromium(): Promise<Chromium> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'signaling-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: systemProgramPath(SYSTEM_PROGRAMS.chromium),
    headless: true, // passes --headless
    viewport: { width: 1280, height: 800 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      // Host candidates and TURN servers on 127.0.0.1 are otherwise left out of ICE.
      '--allow-loopback-in-peer-connection',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Opens the demo served by a node with `query` (e.g. `relay=1`), joins `room` as `name`. */
export async function openDemo(browser: BrowserContext, httpUrl: string, room: string, name: string, query = ''): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error(`[${name}] page error:`, error.message));
  await page.goto(`${httpUrl}/?room=${room}${query ? `&${query}` : ''}`);
  await page.fill('#name', name);
  await page.click('#join');
  await page.waitForSelector('#room-view:not([hidden])', WAIT);
  return page;
}

export const selfId = (page: Page) => page.evaluate(() => window.demo.client.room(window.demo.page.room!)!.self.id);

export async function waitForChannelOpen(page: Page, peerId: string, label: string): Promise<void> {
  await page.waitForFunction(
    ([p, l]) => window.demo.page.calls.get(p)?.channels.get(l)?.readyState === 'open',
    [peerId, label] as const,
    WAIT,
  );
}
