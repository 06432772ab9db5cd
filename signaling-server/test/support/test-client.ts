// The one test client: speaks protocol v1 over a real WebSocket, checks every frame it receives
// against the server message schemas, and awaits messages by predicate with a timeout.
import WebSocket from 'ws';
import { ServerMessage } from '../../src/protocol/messages.js';

type Msg = ServerMessage;
type Of<T extends Msg['type']> = Extract<Msg, { type: T }>;

interface Waiter {
  predicate: (m: Msg) => boolean;
  resolve: (m: Msg) => void;
}

export class TestClient {
  /** Every message received, in order. */
  readonly received: Msg[] = [];
  /** Frames that did not match the protocol's server message schemas. */
  readonly violations: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly unclaimed: Msg[] = [];
  private waiters: Waiter[] = [];
  private nextId = 1;

  private constructor(
    readonly ws: WebSocket,
    readonly welcome: Of<'welcome'>,
  ) {
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** `localAddress` picks the source address (any 127.x.y.z), so one machine can be many clients. */
  static async connect(url: string, opts: { headers?: Record<string, string>; localAddress?: string } = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { headers: opts.headers, localAddress: opts.localAddress });
    const early: string[] = [];
    ws.on('message', (data) => early.push(data.toString()));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    const first = await new Promise<string>((resolve, reject) => {
      if (early.length > 0) return resolve(early[0]!);
      const timer = setTimeout(() => reject(new Error('no welcome within 5 s')), 5000);
      ws.once('message', (data) => {
        clearTimeout(timer);
        resolve(data.toString());
      });
    });
    const welcome = ServerMessage.parse(JSON.parse(first));
    if (welcome.type !== 'welcome') throw new Error(`first frame was ${first}`);
    ws.removeAllListeners('message');
    const client = new TestClient(ws, welcome);
    for (const frame of early.slice(1)) client.onFrame(frame);
    ws.on('message', (data) => client.onFrame(data.toString()));
    return client;
  }

  private onFrame(text: string): void {
    let msg: Msg;
    try {
      const parsed = ServerMessage.safeParse(JSON.parse(text));
      if (!parsed.success) {
        this.violations.push(text);
        return;
      }
      msg = parsed.data;
    } catch {
      this.violations.push(text);
      return;
    }
    this.received.push(msg);
    const waiter = this.waiters.find((w) => w.predicate(msg));
    if (waiter) {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.resolve(msg);
    } else {
      this.unclaimed.push(msg);
    }
  }

  send(message: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** The first not yet claimed message matching the predicate, now or when it arrives. */
  waitFor<T extends Msg = Msg>(predicate: (m: Msg) => boolean, timeoutMs = 5000, what = 'a message'): Promise<T> {
    const index = this.unclaimed.findIndex(predicate);
    if (index >= 0) return Promise.resolve(this.unclaimed.splice(index, 1)[0] as T);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  waitForType<T extends Msg['type']>(type: T, extra: (m: Of<T>) => boolean = () => true, timeoutMs = 5000): Promise<Of<T>> {
    return this.waitFor<Of<T>>((m) => m.type === type && extra(m as Of<T>), timeoutMs, type);
  }

  /** Sends with a fresh id and resolves with the reply that echoes it (error replies included). */
  request(message: Record<string, unknown>, timeoutMs = 5000): Promise<Msg> {
    const id = this.nextId++;
    this.send({ ...message, id });
    return this.waitFor((m) => 'id' in m && m.id === id, timeoutMs, `the reply to ${String(message.type)} #${id}`);
  }

  async join(room: string, extra: Record<string, unknown> = {}): Promise<Of<'joined'>> {
    const reply = await this.request({ type: 'join', room, ...extra });
    if (reply.type !== 'joined') throw new Error(`join ${room} failed: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Messages received so far that match, without claiming them. */
  seen(predicate: (m: Msg) => boolean): Msg[] {
    return this.received.filter(predicate);
  }

  close(): void {
    this.ws.close(1000);
  }

  /** Drops the TCP connection without a close handshake, as a lost network would. */
  drop(): void {
    this.ws.terminate();
  }
}
