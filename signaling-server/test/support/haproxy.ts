// A private HAProxy (Debian's `haproxy` package, which the global setup installs) in front of test nodes, on a free loopback port:
// HTTP mode as in deploy/haproxy/haproxy.cfg, telling the nodes the client's address either with
// the PROXY protocol v2 or with X-Forwarded-For. Clients reach it from any 127.x.y.z address
// (ws's `localAddress`), so one machine can play many clients behind one proxy.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './cluster.js';
import { SYSTEM_PROGRAMS, systemProgramPath } from './system-packages.js';

export type ClientAddressMode = 'proxy-v2' | 'forwardfor';

export interface Haproxy {
  port: number;
  url: string;
  stop(): Promise<void>;
}

function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts HAProxy balancing over the given node ports; it connects to them from 127.0.0.1. */
export async function startHaproxy(nodePorts: number[], mode: ClientAddressMode): Promise<Haproxy> {
  const haproxy = systemProgramPath(SYSTEM_PROGRAMS.haproxy);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-test-'));
  const config = join(dir, 'haproxy.cfg');
  const serverOption = mode === 'proxy-v2' ? ' send-proxy-v2' : '';
  writeFileSync(
    config,
    [
      'global',
      '    maxconn 2000',
      'defaults',
      '    mode http',
      '    timeout connect 5s',
      '    timeout client 60s',
      '    timeout server 60s',
      '    timeout tunnel 60s',
      ...(mode === 'forwardfor' ? ['    option forwardfor'] : []),
      'frontend signaling',
      `    bind 127.0.0.1:${port}`,
      '    default_backend nodes',
      'backend nodes',
      '    balance roundrobin',
      ...nodePorts.map((p, i) => `    server node-${i + 1} 127.0.0.1:${p}${serverOption}`),
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn(haproxy, ['-f', config, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // HAProxy says nothing when it is ready: poll its port, bounded.
  const deadline = Date.now() + 10_000;
  while (!(await isListening(port))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`haproxy exited at start:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`haproxy did not listen on ${port} within 10 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
