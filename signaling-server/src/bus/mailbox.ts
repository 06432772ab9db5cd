// Per-participant mailboxes for signals addressed to a participant between two connections. The
// node that held the participant stores what arrives for it; the node it resumes on takes the lot,
// in order, once. Redis lists with a TTL of the grace period in a cluster; a Map in one process.
import type { Redis } from 'ioredis';

export interface ParticipantMailbox {
  /** Appends; false when the mailbox already holds `max` items (the item is dropped). */
  push(participantId: string, frame: string, ttlMs: number, max: number): Promise<boolean>;
  /** Removes and returns everything, oldest first. */
  take(participantId: string): Promise<string[]>;
  /** Drops everything; resolves with how many items were dropped. */
  discard(participantId: string): Promise<number>;
}

export class RedisMailbox implements ParticipantMailbox {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(participantId: string): string {
    return `${this.prefix}mbox:${participantId}`;
  }

  async push(participantId: string, frame: string, ttlMs: number, max: number): Promise<boolean> {
    const key = this.key(participantId);
    const results = await this.redis.multi().rpush(key, frame).pexpire(key, Math.max(1, ttlMs)).exec();
    const length = Number(results?.[0]?.[1] ?? 0);
    if (length <= max) return true;
    // Over the bound: this node is the only writer, so taking the newest back off is exact.
    await this.redis.rpop(key);
    return false;
  }

  async take(participantId: string): Promise<string[]> {
    const key = this.key(participantId);
    const results = await this.redis.multi().lrange(key, 0, -1).del(key).exec();
    return (results?.[0]?.[1] as string[] | undefined) ?? [];
  }

  async discard(participantId: string): Promise<number> {
    const key = this.key(participantId);
    const results = await this.redis.multi().llen(key).del(key).exec();
    return Number(results?.[0]?.[1] ?? 0);
  }
}

export class MemoryMailbox implements ParticipantMailbox {
  private readonly boxes = new Map<string, { items: string[]; timer: NodeJS.Timeout }>();

  async push(participantId: string, frame: string, ttlMs: number, max: number): Promise<boolean> {
    let box = this.boxes.get(participantId);
    if (box) clearTimeout(box.timer);
    else this.boxes.set(participantId, (box = { items: [], timer: undefined as unknown as NodeJS.Timeout }));
    box.timer = setTimeout(() => this.boxes.delete(participantId), ttlMs).unref();
    if (box.items.length >= max) return false;
    box.items.push(frame);
    return true;
  }

  async take(participantId: string): Promise<string[]> {
    const box = this.boxes.get(participantId);
    if (!box) return [];
    clearTimeout(box.timer);
    this.boxes.delete(participantId);
    return box.items;
  }

  async discard(participantId: string): Promise<number> {
    return (await this.take(participantId)).length;
  }
}
