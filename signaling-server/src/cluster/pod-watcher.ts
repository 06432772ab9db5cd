// Watches the pods of this node's own Deployment through the Kubernetes API (list, then watch from
// the list's resourceVersion) and reports each pod that is gone (deleted, Failed or Succeeded) once,
// so the reaper can free its participants without waiting for heartbeats to expire. It is an
// accelerator only: on any API error it logs, backs off and retries; heartbeats remain the backstop.
import {
  CoreV1Api,
  KubeConfig,
  Observable,
  Watch,
  type ConfigurationOptions,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface PodWatcherOptions {
  namespace: string;
  labelSelector: string;
  onPodGone: (podName: string) => void;
  log: Logger;
  /** Defaults to the in-cluster service account config. */
  kubeConfig?: KubeConfig;
  /** Limit on each list request, and the grace the client gives a watch past watchTimeoutSeconds. */
  requestTimeoutMs?: number;
  /** Asked of the API server for each watch; the watch then resumes from its resourceVersion. */
  watchTimeoutSeconds?: number;
  /** Delay before retrying after an error, doubling up to maxBackoffMs, with jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

// The shapes read from the API; list items arrive deserialised, watch objects as raw JSON, and
// both carry these fields under the same names.
interface PodLike {
  metadata?: { name?: string; uid?: string; resourceVersion?: string };
  status?: { phase?: string };
}
interface StatusLike {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

type WatchOutcome = 'resume' | 'relist' | 'retry';

const GONE_PHASES = new Set(['Failed', 'Succeeded']);
const LIST_PAGE_SIZE = 500;
// A watch that ends sooner than this without an event counts as a failure, so that a server that
// accepts and immediately closes watches is retried with backoff instead of in a tight loop.
const MIN_HEALTHY_WATCH_MS = 1_000;

export class PodWatcher {
  private readonly log: Logger;
  private readonly kubeConfig: KubeConfig;
  private readonly requestTimeoutMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  /** uid → name of every pod of the selector seen alive at the last list or since. */
  private readonly known = new Map<string, string>();
  /** uids already reported, kept until the pod's DELETED event or its absence from a list. */
  private readonly reported = new Set<string>();
  private resourceVersion: string | undefined;
  private failures = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private stopController = new AbortController();
  private cancelCurrent: (() => void) | undefined;

  constructor(private readonly opts: PodWatcherOptions) {
    this.log = opts.log.child({ module: 'pod-watcher' });
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 120;
    this.minBackoffMs = opts.minBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.kubeConfig = opts.kubeConfig ?? PodWatcher.inClusterConfig();
  }

  private static inClusterConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return kc;
  }

  /** Resolves once the first list has succeeded or failed; never rejects on API errors. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stopController = new AbortController();
    const firstList = await this.listOnce();
    this.log.info({ namespace: this.opts.namespace, selector: this.opts.labelSelector, listed: firstList }, 'watching pods');
    this.loop = this.run(firstList);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopController.abort();
    this.cancelCurrent?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(listed: boolean): Promise<void> {
    let needsList = !listed;
    if (needsList) await this.backoff();
    while (this.running) {
      if (needsList) {
        if (!(await this.listOnce())) {
          await this.backoff();
          continue;
        }
        needsList = false;
      }
      const outcome = await this.watchOnce();
      if (!this.running) break;
      if (outcome === 'relist') needsList = true;
      if (outcome === 'retry') await this.backoff();
    }
  }

  /** Lists the pods (all pages), reports those gone since the last look, and sets the resourceVersion. */
  private async listOnce(): Promise<boolean> {
    const api = this.kubeConfig.makeApiClient(CoreV1Api);
    const items: PodLike[] = [];
    let resourceVersion: string | undefined;
    let continueToken: string | undefined;
    try {
      do {
        const page = await api.listNamespacedPod(
          {
            namespace: this.opts.namespace,
            labelSelector: this.opts.labelSelector,
            limit: LIST_PAGE_SIZE,
            _continue: continueToken,
          },
          this.withDeadline(this.requestTimeoutMs),
        );
        items.push(...page.items);
        resourceVersion = page.metadata?.resourceVersion;
        continueToken = page.metadata?._continue || undefined;
      } while (continueToken);
    } catch (err) {
      if (this.running) this.log.warn({ err: describe(err) }, 'listing pods failed; will retry');
      return false;
    }
    this.failures = 0;
    this.resourceVersion = resourceVersion;
    this.reconcile(items);
    return true;
  }

  /** After a list: pods known before and absent now were deleted while no watch was open. */
  private reconcile(items: PodLike[]): void {
    const present = new Set<string>();
    for (const pod of items) {
      const uid = pod.metadata?.uid;
      if (uid) present.add(uid);
    }
    for (const [uid, name] of this.known) {
      if (present.has(uid)) continue;
      this.known.delete(uid);
      this.reportGone(uid, name, 'deleted');
      this.reported.delete(uid);
    }
    for (const uid of this.reported) if (!present.has(uid)) this.reported.delete(uid);
    for (const pod of items) this.observe(pod);
  }

  private async watchOnce(): Promise<WatchOutcome> {
    const startedAt = Date.now();
    let sawEvent = false;
    let settle!: (outcome: WatchOutcome) => void;
    const ended = new Promise<WatchOutcome>((resolve) => (settle = resolve));
    let finished = false;
    let controller: AbortController | undefined;
    const finish = (outcome: WatchOutcome) => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      controller?.abort();
      settle(outcome);
    };
    // The server ends the watch after watchTimeoutSeconds; a connection that hangs past that (or
    // never answers) is abandoned here and the watch resumes from the last resourceVersion.
    const deadline = setTimeout(
      () => {
        this.log.warn('pod watch timed out; resuming');
        finish('retry');
      },
      this.watchTimeoutSeconds * 1000 + this.requestTimeoutMs,
    );
    this.cancelCurrent = () => finish('resume');

    const onEvent = (type: string, object: unknown) => {
      if (finished) return;
      sawEvent = true;
      const outcome = this.handleEvent(type, object);
      if (outcome) finish(outcome);
    };
    const onDone = (err: unknown) => {
      if (finished) return;
      if (statusCodeOf(err) === 410) {
        this.log.info('pod watch resourceVersion expired (HTTP 410); relisting');
        finish('relist');
      } else if (err) {
        this.log.warn({ err: describe(err) }, 'pod watch failed; will retry');
        finish('retry');
      } else {
        // A clean end: the server's timeout or a dropped connection. Resume from resourceVersion.
        const healthy = sawEvent || Date.now() - startedAt >= MIN_HEALTHY_WATCH_MS;
        if (healthy) this.failures = 0;
        finish(healthy ? 'resume' : 'retry');
      }
    };

    // Not awaited: watch() settles only once the response headers arrive, which may be never.
    new Watch(this.kubeConfig)
      .watch(
        `/api/v1/namespaces/${encodeURIComponent(this.opts.namespace)}/pods`,
        {
          labelSelector: this.opts.labelSelector,
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: this.watchTimeoutSeconds,
        },
        onEvent,
        onDone,
      )
      .then((c) => {
        controller = c;
        if (finished) c.abort();
      }, onDone);
    const outcome = await ended;
    this.cancelCurrent = undefined;
    return outcome;
  }

  /** Applies one watch event; returns how the watch must end, or undefined to keep reading. */
  private handleEvent(type: string, object: unknown): WatchOutcome | undefined {
    if (type === 'ERROR') {
      const status = (object ?? {}) as StatusLike;
      if (status.code === 410) {
        this.log.info({ reason: status.reason }, 'pod watch resourceVersion expired; relisting');
        return 'relist';
      }
      this.log.warn({ status: { code: status.code, reason: status.reason, message: status.message } }, 'pod watch error event');
      return 'retry';
    }
    const pod = (object ?? {}) as PodLike;
    if (pod.metadata?.resourceVersion) this.resourceVersion = pod.metadata.resourceVersion;
    this.failures = 0;
    if (type === 'ADDED' || type === 'MODIFIED') {
      this.observe(pod);
    } else if (type === 'DELETED') {
      const uid = pod.metadata?.uid;
      const name = pod.metadata?.name;
      if (uid && name) {
        this.known.delete(uid);
        this.reportGone(uid, name, 'deleted');
        this.reported.delete(uid);
      }
    }
    // BOOKMARK carries only a resourceVersion, already taken above.
    return undefined;
  }

  private observe(pod: PodLike): void {
    const uid = pod.metadata?.uid;
    const name = pod.metadata?.name;
    if (!uid || !name) return;
    this.known.set(uid, name);
    const phase = pod.status?.phase;
    if (phase && GONE_PHASES.has(phase)) this.reportGone(uid, name, phase.toLowerCase());
  }

  private reportGone(uid: string, name: string, why: string): void {
    if (this.reported.has(uid)) return;
    this.reported.add(uid);
    this.log.info({ pod: name, why }, 'pod gone');
    try {
      this.opts.onPodGone(name);
    } catch (err) {
      this.log.error({ err, pod: name }, 'onPodGone threw');
    }
  }

  /** Call options that abort the request at the deadline or when the watcher stops. */
  private withDeadline(ms: number): ConfigurationOptions {
    const signal = AbortSignal.any([this.stopController.signal, AbortSignal.timeout(ms)]);
    return {
      middleware: [
        {
          pre: (ctx: RequestContext) => {
            ctx.setSignal(signal);
            return new Observable(Promise.resolve(ctx));
          },
          post: (rsp: ResponseContext) => new Observable(Promise.resolve(rsp)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
  }

  private async backoff(): Promise<void> {
    const ceiling = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** this.failures);
    this.failures = Math.min(this.failures + 1, 30);
    const ms = ceiling / 2 + Math.random() * (ceiling / 2);
    const signal = this.stopController.signal;
    if (signal.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }
}

function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code; // ApiException from the generated client
  return undefined;
}

/** A short description of an API error for the log (requests carry the token; errors do not). */
function describe(err: unknown): { name?: string; message: string; status?: number } {
  if (!(err instanceof Error)) return { message: String(err).slice(0, 300) };
  return { name: err.name, message: err.message.slice(0, 300), status: statusCodeOf(err) };
}
