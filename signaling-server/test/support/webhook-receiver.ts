// A local webhook endpoint for the tests: checks each delivery's Standard Webhooks signature on
// its own (not with the server's code), records it, and answers as the test says.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  id: string;
  timestamp: number;
  isSignatureValid: boolean;
  type: string;
  data: Record<string, any>;
  body: string;
}

/** What to do with a delivery: answer this status now, or hold the request until the promise resolves. */
export type Responder = (d: Delivery) => number | Promise<number>;

export class WebhookReceiver {
  /** Every request, in arrival order (failed ones included). */
  readonly requests: Delivery[] = [];
  /** Deliveries answered 2xx, in arrival order. */
  readonly accepted: Delivery[] = [];
  respond: Responder = () => 204;
  private waiters: { predicate: () => boolean; resolve: () => void }[] = [];

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    readonly url: string,
    private readonly key: Buffer,
  ) {}

  static async start(secret: string): Promise<WebhookReceiver> {
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    let receiver!: WebhookReceiver;
    const server = createServer((req, res) => void receiver.onRequest(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    receiver = new WebhookReceiver(server, `http://127.0.0.1:${port}/hook`, key);
    return receiver;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const id = String(req.headers['webhook-id']);
    const timestamp = Number(req.headers['webhook-timestamp']);
    const expected = createHmac('sha256', this.key).update(`${id}.${timestamp}.${body}`).digest('base64');
    const signatures = String(req.headers['webhook-signature'] ?? '').split(' ');
    const parsed = JSON.parse(body) as { type: string; data: Record<string, any> };
    const delivery: Delivery = {
      id,
      timestamp,
      isSignatureValid: signatures.includes(`v1,${expected}`) && Math.abs(Date.now() / 1000 - timestamp) < 300,
      type: parsed.type,
      data: parsed.data,
      body,
    };
    this.requests.push(delivery);
    const status = await this.respond(delivery);
    if (status >= 200 && status < 300) this.accepted.push(delivery);
    res.writeHead(status).end();
    this.wake();
  }

  /** Resolves once `predicate` holds (checked after each request), or rejects after timeoutMs. */
  until(predicate: () => boolean, timeoutMs = 15_000, what = 'webhooks'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${this.describe()}`)), timeoutMs);
      this.waiters.push({
        predicate,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Accepted events of one room, in arrival order, first delivery of each id only. */
  roomEvents(room: string): Delivery[] {
    const seen = new Set<string>();
    return this.accepted.filter((d) => d.data.room === room && !seen.has(d.id) && seen.add(d.id));
  }

  describe(): string {
    return this.accepted.map((d) => `${d.type}(${d.data.room})`).join(', ');
  }

  private wake() {
    for (const w of [...this.waiters]) {
      if (w.predicate()) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
