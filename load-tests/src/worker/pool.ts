// The orchestrator's side of the worker threads: hands out plans, moves every worker through
// setup → start → done → close together, and merges what they report.
import { Worker } from 'node:worker_threads';
import type { FromWorker, Progress, ToWorker, WorkerPlan, WorkerStats } from './messages.js';

const BOOT = new URL('./boot.mjs', import.meta.url);
const ENTRY = new URL('./load-worker.ts', import.meta.url).href;

export interface SetupResult {
  connected: number;
  failed: number;
  setupMs: number;
  errors: Record<string, number>;
}

/** Adds up the counts and errors of several setups; the caller says how long they took together. */
export function mergeSetups(parts: readonly SetupResult[], setupMs: number): SetupResult {
  const errors: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    connected: parts.reduce((s, p) => s + p.connected, 0),
    failed: parts.reduce((s, p) => s + p.failed, 0),
    setupMs,
    errors,
  };
}

export class WorkerPool {
  private readonly workers: Worker[];
  private readonly inbox: Array<Array<FromWorker>>;
  private readonly waiters: Array<Array<() => void>>;
  private fatal: Error | undefined;
  private isClosed = false;
  /** Called on every progress report, with the index of its worker. */
  onProgress: ((worker: number, p: Progress) => void) | undefined;

  constructor(plans: WorkerPlan[]) {
    this.inbox = plans.map(() => []);
    this.waiters = plans.map(() => []);
    this.workers = plans.map((plan, i) => {
      const w = new Worker(BOOT, { workerData: { entry: ENTRY, plan } });
      w.on('message', (m: FromWorker) => {
        if (m.type === 'progress') this.onProgress?.(i, m);
        else if (m.type === 'fatal') this.fail(new Error(`worker ${i}: ${m.message}`));
        else {
          this.inbox[i]!.push(m);
          for (const wake of this.waiters[i]!.splice(0)) wake();
        }
      });
      w.on('error', (err) => this.fail(err));
      w.on('exit', (code) => {
        if (code !== 0 && !this.isClosed) this.fail(new Error(`worker ${i} exited with ${code}`));
      });
      return w;
    });
  }

  private fail(err: Error): void {
    this.fatal ??= err;
    for (const list of this.waiters) for (const wake of list.splice(0)) wake();
  }

  private async next<T extends FromWorker['type']>(
    i: number,
    type: T,
    timeoutMs: number,
  ): Promise<Extract<FromWorker, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.fatal) throw this.fatal;
      const idx = this.inbox[i]!.findIndex((m) => m.type === type);
      if (idx >= 0) return this.inbox[i]!.splice(idx, 1)[0] as Extract<FromWorker, { type: T }>;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`worker ${i}: no '${type}' within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters[i]!.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private all<T extends FromWorker['type']>(type: T, timeoutMs: number) {
    return Promise.all(this.workers.map((_, i) => this.next(i, type, timeoutMs)));
  }

  private send(m: ToWorker): void {
    for (const w of this.workers) w.postMessage(m);
  }

  async ready(timeoutMs: number): Promise<SetupResult> {
    const replies = await this.all('ready', timeoutMs);
    // The workers set up side by side: the setup took as long as the slowest.
    return mergeSetups(replies, Math.max(...replies.map((r) => r.setupMs)));
  }

  start(warmupMs: number, durationMs: number, drainMs: number): void {
    this.send({ type: 'start', warmupMs, durationMs, drainMs });
  }

  async done(timeoutMs: number): Promise<WorkerStats[]> {
    return (await this.all('done', timeoutMs)).map((m) => m.stats);
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.send({ type: 'close' });
    await this.all('closed', 30_000).catch(() => undefined);
    this.isClosed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
