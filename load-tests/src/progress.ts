// One status line per second on stderr while a scenario runs (rewritten in place on a terminal).
import { LatencyHistogram } from './histogram.js';
import type { Progress } from './worker/messages.js';

export class ProgressLine {
  private readonly latest = new Map<number, Progress>();
  private readonly window = new LatencyHistogram();
  private readonly timer: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private readonly isTty = process.stderr.isTTY === true;
  private lastRate = { at: Date.now(), delivered: 0 };

  constructor(
    private readonly label: string,
    private readonly totalMs: number,
    private readonly quiet = false,
  ) {
    this.timer = setInterval(() => this.print(), 1000);
    this.timer.unref();
  }

  update(worker: number, p: Progress): void {
    this.latest.set(worker, p);
    this.window.merge(p.interval);
  }

  private print(): void {
    if (this.quiet) return;
    let sent = 0;
    let delivered = 0;
    let joins = 0;
    let errors = 0;
    for (const p of this.latest.values()) {
      sent += p.sent;
      delivered += p.delivered;
      joins += p.joins;
      errors += p.errors;
    }
    const now = Date.now();
    const rate = ((delivered - this.lastRate.delivered) * 1000) / Math.max(1, now - this.lastRate.at);
    this.lastRate = { at: now, delivered };
    const p99 = this.window.count ? `${(this.window.quantileUs(0.99) / 1000).toFixed(1)} ms` : '-';
    this.window.reset();
    const elapsed = ((now - this.startedAt) / 1000).toFixed(0);
    const total = (this.totalMs / 1000).toFixed(0);
    const line =
      `  ${this.label}  ${elapsed}/${total}s  sent ${sent}  delivered ${delivered} (${rate.toFixed(0)}/s)  p99(1s) ${p99}` +
      (joins ? `  joins ${joins}` : '') +
      (errors ? `  errors ${errors}` : '');
    process.stderr.write(this.isTty ? `\r\x1b[K${line}` : `${line}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.isTty && !this.quiet) process.stderr.write('\r\x1b[K');
  }
}

export function say(quiet: boolean, text: string): void {
  if (!quiet) process.stderr.write(`${text}\n`);
}
