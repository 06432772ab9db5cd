// The SDK as an application gets it: `npm pack` of the client workspace, the tarball installed in a
// scratch project outside the repository, then used against a running two-node cluster by a Node
// bot and by a browser page bundled with esbuild, which talk to each other through the cluster.
// The type declarations are checked from the installed package too.
/// <reference lib="dom" />
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchChromium, type Chromium } from '../support/chromium.js';
import { killAllNodes, startCluster, uniqueName, type RunningNode } from '../support/cluster.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = promisify(execFile);
const NPM_FLAGS = ['--no-audit', '--no-fund', '--prefer-offline'];
/** What the SDK's own package.json says; the tarball must be this package at this version. */
const CLIENT = JSON.parse(readFileSync(join(ROOT, 'client', 'package.json'), 'utf8')) as { name: string; version: string };

let scratch: string;
let browser: Chromium | undefined;
let a: RunningNode;
let b: RunningNode;
let packed: { filename: string; files: { path: string }[] };

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'signaling-sdk-app-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', scratch, ...NPM_FLAGS], {
    cwd: join(ROOT, 'client'),
    timeout: 120_000,
  });
  packed = (JSON.parse(stdout) as (typeof packed)[])[0]!;
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'sdk-app', private: true, type: 'module' }));
  await run('npm', ['install', ...NPM_FLAGS, `./${packed.filename}`, 'ws@^8'], { cwd: scratch, timeout: 120_000 });
  const cluster = await startCluster(2, {
    env: { ICE_SERVERS: 'stun:stun.example.org,turn:turn.example.org:3478', TURN_SECRET: 'sdk-test-turn-secret-0123456789' },
  });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await killAllNodes();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const BOT = `
import { WebSocket } from 'ws';
import { SignalingClient } from '${CLIENT.name}';
const [url, room] = process.argv.slice(2);
const client = new SignalingClient({ url, WebSocket, reconnect: false });
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
client.on('signal', async ({ from, data }) => {
  if (data?.say !== 'hello') return;
  await client.signal(room, from, { reply: 'hello from the bot' });
  say({ event: 'replied', to: from });
  client.close();
});
await client.connect();
const joined = await client.join(room, { name: 'bot' });
say({ event: 'joined', self: joined.self.id, iceServers: joined.iceServers });
`;

const PAGE = `
import { SignalingClient, SignalingError } from '${CLIENT.name}';
window.talkToBot = async (url, room) => {
  const client = new SignalingClient({ url });
  await client.connect();
  const joined = await client.join(room, { name: 'page' });
  const bot = joined.peers.find((p) => p.name === 'bot') ?? (await client.once('peer-joined', (e) => e.peer.name === 'bot')).peer;
  const reply = client.once('signal', (e) => e.from === bot.id);
  await client.signal(room, bot.id, { say: 'hello' });
  const { data } = await reply;
  let refused;
  try {
    await client.signal('a-room-it-is-not-in', bot.id, {});
  } catch (error) {
    refused = error instanceof SignalingError ? error.code : String(error);
  }
  client.close();
  return { self: joined.self.id, botId: bot.id, iceServers: joined.iceServers, reply: data, refused };
};
`;

const TYPES = `
import { SignalingClient, SignalingError, type IceServer, type JoinedRoom } from '${CLIENT.name}';
const client = new SignalingClient({ url: 'ws://127.0.0.1/ws' });
const joined: Promise<JoinedRoom> = client.join('room', { name: 'ada' });
const servers: Promise<IceServer[]> = client.refreshIceServers('room');
client.on('ice-servers', ({ room, iceServers }) => console.log(room, iceServers.length));
const code: string = new SignalingError('timeout').code;
// @ts-expect-error a room name is required
client.join();
export { joined, servers, code };
`;

it('packs only the built SDK, its types and docs', () => {
  expect(packed.filename).toBe(`${CLIENT.name.replace('@', '').replace('/', '-')}-${CLIENT.version}.tgz`);
  const paths = packed.files.map((f) => f.path);
  expect(paths).toEqual(
    expect.arrayContaining(['package.json', 'README.md', 'CHANGELOG.md', 'dist/index.js', 'dist/index.d.ts']),
  );
  expect(paths.filter((p) => !/^(package\.json|README\.md|CHANGELOG\.md|dist\/.+)$/.test(p))).toEqual([]);
});

it("the installed README's links stay inside the package", () => {
  const installed = join(scratch, 'node_modules', ...CLIENT.name.split('/'));
  const readme = readFileSync(join(installed, 'README.md'), 'utf8');
  const relative = [...readme.matchAll(/\]\(([^)#\s]+)[^)]*\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/i.test(t));
  expect(relative.filter((target) => !existsSync(join(installed, target)) || target.startsWith('..'))).toEqual([]);
});

it('an application type-checks against the installed package through its exports', async () => {
  writeFileSync(join(scratch, 'types.ts'), TYPES);
  const args = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext'];
  await expect(run(process.execPath, [TSC, ...args, '--lib', 'es2022,dom', 'types.ts'], { cwd: scratch })).resolves.toBeDefined();
});

it(
  'a Node bot and a bundled browser page, both on the installed SDK, signal each other across two nodes',
  { timeout: 120_000 },
  async () => {
    const room = uniqueName('sdk-');
    // The bot, from the scratch project, on node A.
    writeFileSync(join(scratch, 'bot.mjs'), BOT);
    const bot = spawn(process.execPath, ['bot.mjs', a.url, room], { cwd: scratch, stdio: ['ignore', 'pipe', 'inherit'] });
    const botExit = new Promise<number | null>((resolve) => bot.once('exit', resolve));
    const botLines: Record<string, unknown>[] = [];
    const botJoined = new Promise<Record<string, unknown>>((resolve, reject) => {
      let rest = '';
      bot.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop()!;
        for (const part of parts) {
          const line = JSON.parse(part) as Record<string, unknown>;
          botLines.push(line);
          if (line.event === 'joined') resolve(line);
        }
      });
      void botExit.then((code) => reject(new Error(`the bot exited with ${code} before joining`)));
    });
    const joined = await botJoined;
    expect(joined.iceServers).toEqual([
      { urls: ['stun:stun.example.org'] },
      {
        urls: ['turn:turn.example.org:3478'],
        username: expect.stringMatching(new RegExp(`^\\d+:${joined.self}$`)),
        credential: expect.any(String),
      },
    ]);

    // The page: bundled for the browser from the scratch project (a Node-only import would fail
    // here), loaded in Chromium, on node B.
    writeFileSync(join(scratch, 'page.js'), PAGE);
    const bundle = await build({
      absWorkingDir: scratch,
      entryPoints: ['page.js'],
      bundle: true,
      platform: 'browser',
      format: 'iife',
      write: false,
      logLevel: 'silent',
    });
    expect(bundle.warnings).toEqual([]);
    browser = await launchChromium();
    const page = await browser.context.newPage();
    page.on('pageerror', (error) => console.error('[sdk page] page error:', error.message));
    await page.addScriptTag({ content: bundle.outputFiles[0]!.text });
    const result = await page.evaluate(
      ([url, r]) =>
        (window as unknown as { talkToBot(u: string, r: string): Promise<Record<string, unknown>> }).talkToBot(url, r),
      [b.url, room] as const,
    );

    expect(result.botId).toBe(joined.self);
    expect(result.reply).toEqual({ reply: 'hello from the bot' });
    expect(result.refused).toBe('not-joined');
    expect((result.iceServers as { username?: string }[])[1]!.username).toMatch(new RegExp(`^\\d+:${result.self as string}$`));
    expect(await botExit).toBe(0);
    expect(botLines.map((l) => l.event)).toEqual(['joined', 'replied']);
    expect(botLines[1]!.to).toBe(result.self);
  },
);
