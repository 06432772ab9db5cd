// Where each away participant's gap starts in its room's log, and each node's delivery checkpoint
// per room: small, short-lived records beside the logs, so that whichever node a participant
// resumes on can read back exactly what it missed, whatever happened to the node it left.
// Redis keys with a TTL in a cluster (gap records hash-tagged like the room's log, checkpoints like
// their node, so every command touches one slot); Maps in one process.
import type { Cluster, Redis } from 'ioredis';
import type { Position } from './bus.js';

export interface GapRecord {
  /** The membership (resume epoch) whose connection ended. */
  epoch: number;
  /** Everything in the room's log after this position is undelivered to the participant. */
  position: Position;
  nodeId: string;
}

export interface GapRecords {
  /** Keeps the record unless one of a newer membership (higher epoch) is there already. */
  save(room: string, participantId: string, record: GapRecord, ttlMs: number): Promise<void>;
  load(room: string, participantId: string): Promise<GapRecord | null>;
  /**
   * This node delivered every signal of each room up to the given position. Used when a node dies
   * without saying where its participants' gaps start: a resume then reads back from there, so at
   * worst it repeats what was delivered since the last checkpoint.
   */
  saveCheckpoints(nodeId: string, positions: Map<string, Position>, ttlMs: number): Promise<void>;
  /** The node's checkpoint in the room, if one was saved within the last `ttlMs` (as saved). */
  loadCheckpoint(room: string, nodeId: string, ttlMs: number): Promise<Position | null>;
}

// KEYS: the record. ARGV: the record, its epoch, its TTL in ms. A record of a newer membership is
// never replaced by an older one's (a slow save of a resume that was itself resumed since).
const SAVE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current and tonumber(string.match(current, '^%d+')) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
`;

export class RedisGapRecords implements GapRecords {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
  ) {}

  private gapKey(room: string, participantId: string): string {
    return `${this.prefix}{r:${room}}:gap:${participantId}`;
  }

  /**
   * A node's checkpoints of one generation (a period of the TTL), all rooms in one hash: a save is
   * one HSET however many rooms it covers. A generation lives two periods, so what a node saved in
   * rooms it has left goes with it instead of piling up in a hash that never expires.
   */
  private checkpointKey(nodeId: string, generation: number): string {
    return `${this.prefix}{n:${nodeId}}:checkpoints:${generation}`;
  }

  async save(room: string, participantId: string, record: GapRecord, ttlMs: number): Promise<void> {
    const value = `${record.epoch} ${record.position} ${record.nodeId}`;
    await this.redis.eval(SAVE_SCRIPT, 1, this.gapKey(room, participantId), value, record.epoch, Math.max(1, ttlMs));
  }

  async load(room: string, participantId: string): Promise<GapRecord | null> {
    const value = await this.redis.get(this.gapKey(room, participantId));
    if (!value) return null;
    const [epoch, position, nodeId] = value.split(' ') as [string, string, string];
    return { epoch: Number(epoch), position, nodeId };
  }

  async saveCheckpoints(nodeId: string, positions: Map<string, Position>, ttlMs: number): Promise<void> {
    if (positions.size === 0) return;
    const key = this.checkpointKey(nodeId, generationOf(ttlMs));
    const results = await this.redis
      .pipeline()
      .hset(key, Object.fromEntries(positions))
      .pexpire(key, 2 * Math.max(1, ttlMs))
      .exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  async loadCheckpoint(room: string, nodeId: string, ttlMs: number): Promise<Position | null> {
    const generation = generationOf(ttlMs);
    return (
      (await this.redis.hget(this.checkpointKey(nodeId, generation), room)) ??
      (await this.redis.hget(this.checkpointKey(nodeId, generation - 1), room))
    );
  }
}

/** The checkpoint generation of this moment: a period of `ttlMs`. */
const generationOf = (ttlMs: number): number => Math.floor(Date.now() / Math.max(1, ttlMs));

/** The in-process twin. */
export class MemoryGapRecords implements GapRecords {
  private readonly gaps = new Map<string, { record: GapRecord; expiresAt: number }>();
  private readonly checkpoints = new Map<string, Position>();

  async save(room: string, participantId: string, record: GapRecord, ttlMs: number): Promise<void> {
    const now = Date.now();
    // Expired records go when the map is touched; a process keeps no more than one grace's worth.
    for (const [key, entry] of this.gaps) if (entry.expiresAt <= now) this.gaps.delete(key);
    const key = `${room}\n${participantId}`;
    // As on Redis: an older membership's record never replaces a newer one's.
    if ((this.gaps.get(key)?.record.epoch ?? -1) > record.epoch) return;
    this.gaps.set(key, { record, expiresAt: now + ttlMs });
  }

  async load(room: string, participantId: string): Promise<GapRecord | null> {
    const entry = this.gaps.get(`${room}\n${participantId}`);
    return entry && entry.expiresAt > Date.now() ? entry.record : null;
  }

  async saveCheckpoints(nodeId: string, positions: Map<string, Position>): Promise<void> {
    // One node per process, so one entry per room it ever delivered in: bounded by the rooms.
    for (const [room, position] of positions) this.checkpoints.set(`${room}\n${nodeId}`, position);
  }

  async loadCheckpoint(room: string, nodeId: string): Promise<Position | null> {
    return this.checkpoints.get(`${room}\n${nodeId}`) ?? null;
  }
}
