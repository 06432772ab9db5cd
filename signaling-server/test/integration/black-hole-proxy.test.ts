// The fault tests' black-hole proxy against a plain echo server: it passes bytes, holds them and
// lets them go in order, forgets old flows without a FIN or an RST while new ones pass, and resets.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBlackHoleProxy, type BlackHoleProxy } from '../support/black-hole-proxy.js';

let echo: Server;
let echoPort: number;
const proxies: BlackHoleProxy[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  echo = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
  echoPort = (echo.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(proxies.map((p) => p.stop()));
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

async function proxy(): Promise<BlackHoleProxy> {
  const p = await startBlackHoleProxy({ host: '127.0.0.1', port: echoPort });
  proxies.push(p);
  return p;
}

/** A connection through the proxy, with everything it received and how it ended. */
async function open(p: BlackHoleProxy) {
  const socket = connect({ host: '127.0.0.1', port: p.port });
  sockets.push(socket);
  const state = { received: '', ended: false, error: '' };
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (state.received += chunk));
  socket.on('end', () => (state.ended = true));
  socket.on('error', (err: NodeJS.ErrnoException) => (state.error = err.code ?? err.message));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, state };
}

async function until(check: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Nothing has an event for "nothing arrived": wait a bounded while, then look. */
const quietFor = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it('passes bytes both ways', async () => {
  const p = await proxy();
  const { socket, state } = await open(p);
  socket.write('hello');
  await until(() => state.received === 'hello', 'the echo');
  expect(p.liveFlows()).toBe(1);
});

it('holds the bytes of old and new flows, then lets them go in order', async () => {
  const p = await proxy();
  const old = await open(p);
  p.setMode('hold');
  old.socket.write('one');
  const fresh = await open(p);
  fresh.socket.write('new');
  await quietFor(200);
  expect(old.state.received).toBe('');
  expect(fresh.state.received).toBe('');
  old.socket.write('two');
  p.setMode('pass');
  await until(() => old.state.received === 'onetwo' && fresh.state.received === 'new', 'the held bytes');
});

it('forgets old flows without a FIN or an RST, while new connections pass', async () => {
  const p = await proxy();
  const old = await open(p);
  old.socket.write('before');
  await until(() => old.state.received === 'before', 'the echo before');
  p.setMode('forget');
  old.socket.write('lost');
  const fresh = await open(p);
  fresh.socket.write('fresh');
  await until(() => fresh.state.received === 'fresh', 'the echo on a new connection');
  // The old end closing its side is not answered either: a dead path carries nothing back.
  old.socket.end();
  await quietFor(200);
  expect(old.state).toEqual({ received: 'before', ended: false, error: '' });
  expect(p.liveFlows()).toBe(1);
});

it('resets open flows and new connections with an RST', async () => {
  const p = await proxy();
  const old = await open(p);
  p.setMode('reset');
  await until(() => old.state.error === 'ECONNRESET', 'the reset of the open flow');
  const fresh = connect({ host: '127.0.0.1', port: p.port });
  sockets.push(fresh);
  const error = await new Promise<string>((resolve) =>
    fresh.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? '')),
  );
  expect(error).toBe('ECONNRESET');
  p.setMode('pass');
  const again = await open(p);
  again.socket.write('back');
  await until(() => again.state.received === 'back', 'the echo after the reset');
});
