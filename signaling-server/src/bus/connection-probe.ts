// Tells a live Redis connection from a silent one. A network that drops a flow without a FIN or an
// RST (a NAT or a load balancer that forgot it, a paused VM) leaves the socket open for minutes to
// hours, and an idle subscriber would never notice: TCP keepalive does not help when something in
// the path still answers for the dead peer. So every watched connection is sent a PING each
// interval (PING is valid in subscribe mode too), and one whose answer misses its deadline, or whose
// handshake after a connect does, is destroyed: ioredis then reconnects as after any other loss (or,
// for a connection that does not retry, reports it ended), and whoever owns it heals as after any
// reconnect. Destroy, not QUIT or FIN: a dead path would never answer either.
import type { Redis } from 'ioredis';

export interface ConnectionProbeOptions {
  /** How often each connection is sent a PING. */
  intervalMs: number;
  /** How long a PING (or the handshake after a connect) may take before the connection counts as dead. */
  timeoutMs: number;
  /** A connection missed its deadline and was destroyed; `connection` is the name it was watched under. */
  onSilent: (connection: string, why: string) => void;
}

/** What is watched of one connection. */
interface Watch {
  name: string;
  interval: NodeJS.Timeout;
  /** The deadline of the PING or handshake under way; null when none is. */
  deadline: NodeJS.Timeout | null;
  detach: () => void;
}

export class ConnectionProbe {
  private readonly watches = new Map<Redis, Watch>();

  constructor(private readonly opts: ConnectionProbeOptions) {}

  /** Probes `redis` until unwatch() or stop(), or until the connection ends for good. */
  watch(name: string, redis: Redis): void {
    if (this.watches.has(redis)) return;
    const onConnect = () => this.armHandshake(redis);
    const onReady = () => this.clearDeadline(redis);
    const onClose = () => this.clearDeadline(redis);
    const onEnd = () => this.unwatch(redis);
    redis.on('connect', onConnect);
    redis.on('ready', onReady);
    redis.on('close', onClose);
    redis.on('end', onEnd);
    const interval = setInterval(() => this.ping(redis), this.opts.intervalMs).unref();
    const detach = () => {
      redis.off('connect', onConnect);
      redis.off('ready', onReady);
      redis.off('close', onClose);
      redis.off('end', onEnd);
    };
    this.watches.set(redis, { name, interval, deadline: null, detach });
    // Watched while its handshake is under way: that handshake has a deadline too.
    if (redis.status === 'connect') this.armHandshake(redis);
  }

  unwatch(redis: Redis): void {
    const watch = this.watches.get(redis);
    if (!watch) return;
    this.watches.delete(redis);
    clearInterval(watch.interval);
    if (watch.deadline) clearTimeout(watch.deadline);
    watch.detach();
  }

  stop(): void {
    for (const redis of [...this.watches.keys()]) this.unwatch(redis);
  }

  private ping(redis: Redis): void {
    const watch = this.watches.get(redis);
    // One probe at a time; a connection that is not up is ioredis's to reconnect, not ours to judge.
    if (!watch || watch.deadline || redis.status !== 'ready') return;
    const stream = redis.stream;
    const deadline = setTimeout(() => {
      // Node runs due timers before it reads sockets: after the event loop was busy past the
      // deadline (a long GC, a starved CPU), the reply may be waiting unread. One round of I/O
      // runs before setImmediate's callback, so a reply that did arrive clears the deadline first.
      setImmediate(() => {
        if (watch.deadline === deadline) this.destroy(redis, stream, 'no PING reply');
      });
    }, this.opts.timeoutMs).unref();
    watch.deadline = deadline;
    redis.ping().then(
      () => {
        if (redis.stream === stream) this.clearDeadline(redis);
      },
      // A failed PING is a connection closing or closed: its close clears the deadline. One that
      // fails while the connection stays up (a command timeout) lets the deadline judge it.
      () => {},
    );
  }

  /** The TCP connection is made; Redis must now answer the handshake (AUTH, the ready check) in time. */
  private armHandshake(redis: Redis): void {
    const watch = this.watches.get(redis);
    if (!watch) return;
    if (watch.deadline) clearTimeout(watch.deadline);
    const stream = redis.stream;
    const deadline = setTimeout(() => {
      // As for a PING (ping()): the answer may be waiting unread after a busy event loop.
      setImmediate(() => {
        if (watch.deadline !== deadline) return;
        if (redis.status === 'connect') this.destroy(redis, stream, 'no handshake reply');
        else this.clearDeadline(redis);
      });
    }, this.opts.timeoutMs).unref();
    watch.deadline = deadline;
  }

  private clearDeadline(redis: Redis): void {
    const watch = this.watches.get(redis);
    if (!watch?.deadline) return;
    clearTimeout(watch.deadline);
    watch.deadline = null;
  }

  /** Destroys the socket the deadline was set on, unless the connection has moved on to another. */
  private destroy(redis: Redis, stream: Redis['stream'], why: string): void {
    const watch = this.watches.get(redis);
    if (!watch) return;
    watch.deadline = null;
    if (redis.stream !== stream || stream.destroyed) return;
    stream.destroy();
    this.opts.onSilent(watch.name, why);
  }
}
