// Acked signals between participants that keep their ids across connections: who acked what to
// whom, what arrived, and whether every acked signal arrived in order ("an ack is a promise").
import type { RunningNode } from './cluster.js';
import type { ClientTracker } from './clients.js';
import type { TestClient } from './test-client.js';

/** A participant that keeps its id across connections, and what it sent, had acked and received. */
export class Member {
  client!: TestClient;
  id = '';
  resume = '';
  isConnected = false;
  /** Sequence numbers acked by the sender's node, per recipient. */
  readonly acked = new Map<string, number[]>();
  /** Sequence numbers received, per sender, in arrival order, over every connection. */
  readonly received = new Map<string, number[]>();
  readonly churn: string[] = [];
  private seq = 0;

  constructor(
    readonly room: string,
    private readonly clients: ClientTracker,
  ) {}

  async connect(node: RunningNode): Promise<void> {
    const client = await this.clients.connect(node);
    client.ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type: string; from?: string; data?: { seq: number }; peer?: { id: string } };
      if (m.type === 'signal' && m.data) {
        if (!this.received.has(m.from!)) this.received.set(m.from!, []);
        this.received.get(m.from!)!.push(m.data.seq);
      }
      if (m.type === 'peer-left' || m.type === 'peer-joined') this.churn.push(`${m.type} ${m.peer!.id}`);
    });
    const joined = await client.join(this.room, this.resume ? { resume: this.resume } : {});
    if (this.resume && (!joined.resumed || joined.self.id !== this.id)) throw new Error(`${this.id} lost its id`);
    this.id = joined.self.id;
    this.resume = joined.resume;
    this.client = client;
    this.isConnected = true;
    void client.closed.then(() => {
      if (this.client === client) this.isConnected = false;
    });
  }

  /** Sends one signal to each peer; records what the node acks (an error or no reply is no promise). */
  signal(peers: Member[]): void {
    if (!this.isConnected) return;
    const client = this.client;
    for (const peer of peers) {
      const seq = this.seq++;
      client
        .request({ type: 'signal', room: this.room, to: peer.id, data: { seq } }, 10_000)
        .then((reply) => {
          if (reply.type !== 'ack') return;
          if (!this.acked.has(peer.id)) this.acked.set(peer.id, []);
          this.acked.get(peer.id)!.push(seq);
        })
        .catch(() => {});
    }
  }
}

/** Every acked signal arrived, each sender's in order; returns what broke, and the duplicates. */
export function verify(members: Member[]): { broken: string[]; duplicates: number } {
  const broken: string[] = [];
  let duplicates = 0;
  for (const sender of members) {
    for (const [to, acked] of sender.acked) {
      const got = members.find((m) => m.id === to)!.received.get(sender.id) ?? [];
      const firsts = got.filter((v, i) => got.indexOf(v) === i);
      duplicates += got.length - firsts.length;
      const missing = acked.filter((s) => !firsts.includes(s));
      const isOrdered = firsts.every((v, i) => i === 0 || v > firsts[i - 1]!);
      if (missing.length > 0 || !isOrdered) {
        broken.push(
          `${sender.id}>${to}: ${missing.length} of ${acked.length} acked missing (${missing.slice(0, 5)}), ordered=${isOrdered}`,
        );
      }
    }
  }
  return { broken, duplicates };
}

export async function untilAllArrived(members: Member[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (verify(members).broken.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}
