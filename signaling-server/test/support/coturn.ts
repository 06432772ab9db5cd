// A private coturn (Debian's `coturn` package) for the TURN tests: loopback only, on a free port,
// TURN REST API auth with the given shared secrets, no configuration file, database or CLI from
// the system; the global setup installs the package (system-packages.ts). Restartable on the same port with other secrets.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './cluster.js';
import { SYSTEM_PROGRAMS, systemProgramPath } from './system-packages.js';

export interface ThrowawayCoturn {
  port: number;
  /** `turn:127.0.0.1:<port>?transport=udp`, for ICE_SERVERS. */
  url: string;
  /** Everything coturn logged since its last start. */
  log(): string;
  /** Starts (or restarts) it with these secrets and waits until it answers STUN. */
  start(secrets: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** Resolves true when a STUN Binding request to the port gets a Binding success response. */
function answersStun(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const transaction = randomBytes(12);
    const request = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), transaction]);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 300);
    socket.on('message', (msg) => done(msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(transaction)));
    socket.on('error', () => done(false));
    socket.send(request, port, '127.0.0.1');
  });
}

export async function startCoturn(secrets: string[]): Promise<ThrowawayCoturn> {
  const turnserver = systemProgramPath(SYSTEM_PROGRAMS.turnserver);
  const port = await freePort(); // TCP and UDP: coturn listens on both
  // Relay ports: a small range from another kernel pick; coturn skips ports that are taken.
  const relayBase = Math.min(await freePort(), 65_535 - 64);
  const dir = mkdtempSync(join(tmpdir(), 'signaling-coturn-'));
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const halt = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    child = null;
  };

  const coturn: ThrowawayCoturn = {
    port,
    url: `turn:127.0.0.1:${port}?transport=udp`,
    log: () => output,
    async start(current: string[]) {
      await halt();
      output = '';
      const args = [
        '-n', // no configuration file: everything is on this command line
        `--listening-ip=127.0.0.1`,
        `--relay-ip=127.0.0.1`,
        `--listening-port=${port}`,
        `--min-port=${relayBase}`,
        `--max-port=${relayBase + 64}`,
        '--use-auth-secret',
        ...current.map((s) => `--static-auth-secret=${s}`),
        '--realm=signaling.test',
        // Both browsers relay through 127.0.0.1, which coturn refuses as a peer by default.
        '--allow-loopback-peers',
        '--no-cli',
        '--no-tls',
        '--no-dtls',
        '--no-software-attribute',
        '--fingerprint',
        '--verbose', // logs each request's user and outcome, which the tests read
        '--log-file=stdout',
        `--pidfile=${join(dir, 'turnserver.pid')}`,
        `--userdb=${join(dir, 'turndb')}`,
      ];
      const process_ = spawn(turnserver, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = process_;
      exited = new Promise((resolve) => process_.once('exit', () => resolve()));
      let spawnError: Error | undefined;
      process_.once('error', (err) => (spawnError = err));
      process_.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      process_.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      const deadline = Date.now() + 10_000;
      while (!(await answersStun(port))) {
        if (spawnError) throw new Error(`cannot run ${turnserver}: ${spawnError.message}`);
        if (process_.exitCode !== null) throw new Error(`turnserver exited with ${process_.exitCode}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`turnserver did not answer STUN on ${port} in 10 s:\n${output}`);
      }
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await coturn.start(secrets);
  return coturn;
}
