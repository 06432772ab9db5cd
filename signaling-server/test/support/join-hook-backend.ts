// A real application backend for the join hook tests: an HTTP server that checks each request
// with the `standardwebhooks` library (not with the server's own signing code), records it, and
// answers as the test says: an answer, a status, a delay, or a connection that never answers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { HookRequest } from '../../src/hook/join-hook.js';

export const HOOK_SECRET = `whsec_${Buffer.from('join-hook-test-secret-0123456789').toString('base64')}`;

export interface HookCall {
  body: HookRequest;
  /** The signature checked out and the timestamp is within the library's tolerance (5 minutes). */
  isVerified: boolean;
}

/** What to answer: a JSON body (200 unless `status`), a raw text, after `delayMs`; `hang` never answers. */
export interface HookReply {
  status?: number;
  body?: unknown;
  raw?: string;
  delayMs?: number;
  hang?: boolean;
}

export type HookResponder = (req: HookRequest) => HookReply | Promise<HookReply>;

export class JoinHookBackend {
  readonly calls: HookCall[] = [];
  /** The most requests it held at once. */
  maxInFlight = 0;
  private inFlight = 0;
  answer: HookResponder = () => ({ body: { allow: true } });
  private readonly verifier = new Webhook(HOOK_SECRET);
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private waiters: { predicate: (c: HookCall) => boolean; resolve: (c: HookCall) => void }[] = [];
  private server: Server | null = null;

  private constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/join-hook`;
  }

  /** On a free port, or on `port` again (a backend that comes back). */
  static async start(port = 0): Promise<JoinHookBackend> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const backend = new JoinHookBackend((server.address() as AddressInfo).port);
    backend.attach(server);
    return backend;
  }

  /** Listens again on the same port after stop(); nothing when it listens. */
  async restart(): Promise<void> {
    if (this.server) return;
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.attach(server);
  }

  /** Closes the port and every connection: the backend is down. */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The first request so far that matches, or the next one that does (within `timeoutMs`). */
  untilCall(predicate: (c: HookCall) => boolean, timeoutMs = 5000): Promise<HookCall> {
    const seen = this.calls.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no such join hook request within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        predicate,
        resolve: (c: HookCall) => {
          clearTimeout(timer);
          resolve(c);
        },
      };
      this.waiters.push(waiter);
    });
  }

  private attach(server: Server): void {
    this.server = server;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('request', (req, res) => void this.onRequest(req, res));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    res.once('close', () => this.inFlight--);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let isVerified = true;
    try {
      this.verifier.verify(text, req.headers as Record<string, string>);
    } catch {
      isVerified = false;
    }
    const body = JSON.parse(text) as HookRequest;
    const call = { body, isVerified };
    this.calls.push(call);
    this.waiters = this.waiters.filter((w) => (w.predicate(call) ? (w.resolve(call), false) : true));
    if (!isVerified) return void res.writeHead(401).end();
    const reply = await this.answer(body);
    if (reply.hang) return;
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' });
      res.end(reply.raw ?? JSON.stringify(reply.body ?? {}));
    };
    if (!reply.delayMs) return send();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      send();
    }, reply.delayMs);
    this.timers.add(timer);
  }
}
