// The same client interface over socket.io-client, for the baseline (see load-tests/baseline/server.ts).
import { io, type Socket } from 'socket.io-client';
import { RequestError, type ConnectOptions, type Delivery, type SignalingClient } from './client.js';

interface Reply {
  error?: { code: string; message?: string };
  self?: { id: string };
}

class SocketIoClient implements SignalingClient {
  onDelivery: ((d: Delivery) => void) | undefined;
  onError: ((code: string) => void) | undefined;
  private isClosing = false;

  constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    const deliver = (kind: Delivery['kind']) => (msg: { room: string; from: string; data: unknown }) =>
      this.onDelivery?.({ kind, room: msg.room, from: msg.from, data: msg.data });
    socket.on('signal', deliver('signal'));
    socket.on('broadcast', deliver('broadcast'));
    socket.on('protocol-error', (e: { code: string }) => this.onError?.(e.code));
    socket.on('disconnect', () => {
      if (!this.isClosing) this.onError?.('closed');
    });
  }

  private async request(event: string, body: Record<string, unknown>): Promise<Reply> {
    let reply: Reply;
    try {
      reply = (await this.socket.timeout(this.timeoutMs).emitWithAck(event, body)) as Reply;
    } catch {
      throw new RequestError('timeout', event);
    }
    if (reply.error) throw new RequestError(reply.error.code, reply.error.message);
    return reply;
  }

  async join(room: string): Promise<string> {
    const reply = await this.request('join', { room });
    if (!reply.self) throw new RequestError('bad-reply', 'join without self');
    return reply.self.id;
  }

  async leave(room: string): Promise<void> {
    await this.request('leave', { room });
  }

  signal(room: string, to: string, data: unknown): void {
    this.socket.emit('signal', { room, to, data });
  }

  broadcast(room: string, data: unknown): void {
    this.socket.emit('broadcast', { room, data });
  }

  close(): void {
    this.isClosing = true;
    this.socket.disconnect();
  }
}

export function connectBaseline(opts: ConnectOptions): Promise<SignalingClient> {
  return new Promise((resolve, reject) => {
    const socket = io(opts.url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: opts.timeoutMs,
      perMessageDeflate: false,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    } as unknown as Parameters<typeof io>[1]);
    socket.once('connect', () => {
      socket.off('connect_error');
      resolve(new SocketIoClient(socket, opts.timeoutMs));
    });
    socket.once('connect_error', (err: Error) => {
      socket.disconnect();
      reject(new RequestError('connect', err.message));
    });
  });
}
