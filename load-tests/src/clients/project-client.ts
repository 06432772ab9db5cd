// A lean protocol-v1 client over `ws`: just enough to join, leave, signal and broadcast under load.
import WebSocket from 'ws';
import { RequestError, type ConnectOptions, type Delivery, type SignalingClient } from './client.js';

interface Pending {
  resolve(msg: Record<string, unknown>): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

class ProjectClient implements SignalingClient {
  onDelivery: ((d: Delivery) => void) | undefined;
  onError: ((code: string) => void) | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private isClosing = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly timeoutMs: number,
  ) {
    ws.on('message', (raw) => this.receive(raw.toString()));
    ws.on('close', () => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new RequestError('closed'));
      }
      this.pending.clear();
      if (!this.isClosing) this.onError?.('closed');
    });
    ws.on('error', () => undefined);
  }

  private receive(text: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.onError?.('bad-json');
      return;
    }
    switch (msg.type) {
      case 'signal':
      case 'broadcast':
        this.onDelivery?.({ kind: msg.type, room: msg.room as string, from: msg.from as string, data: msg.data });
        return;
      case 'joined':
      case 'left':
      case 'ack':
      case 'pong':
      case 'error': {
        const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
        if (!p) {
          if (msg.type === 'error') this.onError?.(String(msg.code));
          return;
        }
        this.pending.delete(msg.id as number);
        clearTimeout(p.timer);
        if (msg.type === 'error') p.reject(new RequestError(String(msg.code), String(msg.message ?? '')));
        else p.resolve(msg);
        return;
      }
      case 'reconnect':
        this.onError?.('reconnect');
        return;
      default:
        return; // welcome, peer-joined, peer-left, state: not measured here
    }
  }

  private request(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError('timeout', String(body.type)));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...body, id }));
    });
  }

  async join(room: string): Promise<string> {
    const reply = await this.request({ type: 'join', room });
    const self = reply.self as { id?: unknown } | undefined;
    if (typeof self?.id !== 'string') throw new RequestError('bad-reply', 'joined without self.id');
    return self.id;
  }

  async leave(room: string): Promise<void> {
    await this.request({ type: 'leave', room });
  }

  signal(room: string, to: string, data: unknown): void {
    this.ws.send(JSON.stringify({ type: 'signal', room, to, data }));
  }

  broadcast(room: string, data: unknown): void {
    this.ws.send(JSON.stringify({ type: 'broadcast', room, data }));
  }

  close(): void {
    this.isClosing = true;
    this.ws.close();
  }
}

/** Resolves once the server's `welcome` has arrived. */
export function connectProject(opts: ConnectOptions): Promise<SignalingClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(opts.url, {
      perMessageDeflate: false,
      handshakeTimeout: opts.timeoutMs,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new RequestError('timeout', 'welcome'));
    }, opts.timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(new RequestError('connect', err.message));
    };
    ws.once('error', onError);
    ws.once('message', (raw) => {
      clearTimeout(timer);
      ws.off('error', onError);
      let msg: { type?: unknown };
      try {
        msg = JSON.parse(raw.toString()) as typeof msg;
      } catch {
        msg = {};
      }
      if (msg.type !== 'welcome') {
        ws.terminate();
        reject(new RequestError('bad-welcome', raw.toString().slice(0, 200)));
        return;
      }
      resolve(new ProjectClient(ws, opts.timeoutMs));
    });
  });
}
