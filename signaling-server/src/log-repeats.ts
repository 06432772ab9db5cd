// Warnings that a fault repeats many times a second (every failed publish while Redis is away,
// every reconnect attempt) are logged once per interval for each message, with how many were left
// out since the last line (`suppressed`), so the log stays readable and small under a fault and the
// first occurrence still appears at once. The counts are only a summary: every failure is counted
// in a metric by its caller as well.
import type { Logger } from 'pino';

/** LOG_REPEAT_INTERVAL_MS's default. */
export const DEFAULT_LOG_REPEAT_INTERVAL_MS = 10_000;

/** What a warning goes through: a logger, or a RepeatedWarnings in front of one. */
export interface Warner {
  warn(fields: object, msg: string): void;
}

/** One message's window: when it was last logged, and what came since. */
interface Repeat {
  loggedAt: number;
  suppressed: number;
  /** The fields of the latest occurrence, for the line that reports the suppressed ones. */
  fields: object;
  timer: NodeJS.Timeout | null;
}

export class RepeatedWarnings implements Warner {
  private readonly repeats = new Map<string, Repeat>();

  constructor(
    private readonly log: Pick<Logger, 'warn'>,
    private readonly intervalMs: number,
  ) {}

  /** Logs now, unless `msg` was logged less than an interval ago: then it is counted, and reported at the window's end. */
  warn(fields: object, msg: string): void {
    const now = Date.now();
    const repeat = this.repeats.get(msg);
    if (!repeat || now - repeat.loggedAt >= this.intervalMs) {
      if (repeat?.timer) clearTimeout(repeat.timer);
      const suppressed = repeat?.suppressed ?? 0;
      this.log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
      this.repeats.set(msg, { loggedAt: now, suppressed: 0, fields, timer: null });
      return;
    }
    repeat.suppressed++;
    repeat.fields = fields;
    repeat.timer ??= setTimeout(() => this.report(msg), repeat.loggedAt + this.intervalMs - now).unref();
  }

  /** A window ended with occurrences left out: one line says how many, and a new window starts. */
  private report(msg: string): void {
    const repeat = this.repeats.get(msg);
    if (!repeat) return;
    repeat.timer = null;
    if (repeat.suppressed === 0) return;
    this.log.warn({ ...repeat.fields, suppressed: repeat.suppressed }, msg);
    repeat.loggedAt = Date.now();
    repeat.suppressed = 0;
  }
}
