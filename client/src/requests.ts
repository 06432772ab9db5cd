// Requests waiting for their reply: id allocation, the per-request timeout, and settling them
// from `joined`/`left`/`ack`/`pong`/`error` frames that echo the id.
import { SignalingError } from './errors.js';
import type { ErrorMessage, RequestId, ServerMessage } from './protocol.js';

type Reply = Exclude<ServerMessage, ErrorMessage>;

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (error: SignalingError) => void;
  timer: ReturnType<typeof setTimeout>;
  type: string;
}

export class PendingRequests {
  private readonly pending = new Map<RequestId, Pending>();
  private nextId = 1;

  constructor(private readonly timeoutMs: number) {}

  allocateId(): number {
    return this.nextId++;
  }

  /** Starts the timeout for a frame that has just been written to the socket. */
  track(id: RequestId, type: string): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalingError('timeout', `no reply to ${type} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer, type });
    });
  }

  /** Settles the request the frame answers; false when the frame answers none of ours. */
  settle(message: ServerMessage): boolean {
    const id = 'id' in message ? message.id : undefined;
    if (id === undefined) return false;
    const entry = this.pending.get(id);
    if (!entry) return false;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    if (message.type === 'error') {
      entry.reject(new SignalingError(message.code, message.message, message.state));
    } else {
      entry.resolve(message);
    }
    return true;
  }

  /** Fails every request in flight, e.g. because their connection ended before the replies came. */
  rejectAll(error: () => SignalingError): void {
    const entries = [...this.pending.values()];
    this.pending.clear();
    for (const entry of entries) {
      clearTimeout(entry.timer);
      entry.reject(error());
    }
  }

  get size(): number {
    return this.pending.size;
  }
}
