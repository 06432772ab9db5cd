// A fake Kubernetes API server on loopback that speaks the real wire shapes: PodList JSON and
// newline-delimited watch events (with BOOKMARKs and 410 Gone as an ERROR event or HTTP 410), a
// graceful pod DELETE, and an autoscaling/v2 HorizontalPodAutoscaler. Used by the pod watcher's
// tests and signalctl's.
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export const NS = 'signaling-test';
export const SELECTOR = 'app.kubernetes.io/name=signaling';
export const SIGNALING = { 'app.kubernetes.io/name': 'signaling', 'pod-template-hash': '7d9f8c6b5' };
export const POSTGRES = { 'app.kubernetes.io/name': 'postgres' };
export const TOKEN = 'fake-service-account-token';

export type Labels = Record<string, string>;
export interface Pod {
  kind: 'Pod';
  apiVersion: 'v1';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    labels: Labels;
    creationTimestamp: string;
    deletionTimestamp?: string;
  };
  spec: { containers: { name: string; image: string }[]; serviceAccountName: string };
  status: {
    phase: string;
    podIP?: string;
    conditions?: { type: string; status: 'True' | 'False' }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number; image: string; imageID: string }[];
  };
}
export interface SeenRequest {
  kind: 'list' | 'watch';
  query: URLSearchParams;
  path: string;
  authorization: string | undefined;
  req: IncomingMessage;
}
export type Gone = 'event' | 'http';

/** A fake API server holding pods in one namespace with a resourceVersion-ordered event history. */
export class FakeKubeApi extends EventEmitter {
  readonly requests: SeenRequest[] = [];
  /** How a watch from a compacted resourceVersion is refused. */
  goneAs: Gone = 'event';
  private readonly server: Server;
  private rv = 1000;
  private uidSeq = 0;
  private readonly pods = new Map<string, Pod>();
  private readonly history: { rv: number; type: string; pod: Pod }[] = [];
  private compactedThrough = 0;
  private readonly open = new Set<{ res: ServerResponse; selector: Labels; bookmarks: boolean }>();
  private holding = false;
  private held: (() => void)[] = [];
  private readonly failures: { kind: 'list' | 'watch'; how: number | 'reset' | 'hang' }[] = [];

  constructor() {
    super();
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** An autoscaler the API answers for (autoscaling/v2), with its current and desired replicas. */
  hpa: { name: string; min: number; max: number; current: number; desired: number } | null = null;

  addPod(name: string, labels: Labels = SIGNALING, phase = 'Running', health: { ready?: boolean; restarts?: number } = {}): void {
    const ready = health.ready ?? phase === 'Running';
    const pod: Pod = {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: {
        name,
        namespace: NS,
        uid: `00000000-0000-4000-8000-${String(++this.uidSeq).padStart(12, '0')}`,
        resourceVersion: '',
        labels,
        creationTimestamp: '2024-11-25T10:00:00Z',
      },
      spec: { containers: [{ name: 'signaling', image: 'signaling-server:test' }], serviceAccountName: 'signaling' },
      status: {
        phase,
        podIP: `10.244.0.${this.uidSeq}`,
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
        containerStatuses: [
          { name: 'signaling', ready, restartCount: health.restarts ?? 0, image: 'signaling-server:test', imageID: 'sha256:0' },
        ],
      },
    };
    this.record('ADDED', pod);
  }

  setPhase(name: string, phase: string): void {
    this.record('MODIFIED', { ...this.pod(name), status: { phase } });
  }

  /** The first half of a graceful delete: the pod is draining, still running. */
  markTerminating(name: string): void {
    const pod = this.pod(name);
    this.record('MODIFIED', { ...pod, metadata: { ...pod.metadata, deletionTimestamp: '2024-11-25T11:00:00Z' } });
  }

  /** A graceful delete: the pod is marked terminating (MODIFIED) first, then removed (DELETED). */
  deletePod(name: string): void {
    if (!this.pod(name).metadata.deletionTimestamp) this.markTerminating(name);
    this.record('DELETED', this.pod(name));
  }

  /** Other objects changed: every open watch that asked for bookmarks gets the new resourceVersion. */
  bookmark(): string {
    this.rv += 7;
    const line = { type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } };
    for (const w of this.open) if (w.bookmarks) w.res.write(`${JSON.stringify(line)}\n`);
    return String(this.rv);
  }

  /** etcd compaction: watches from any resourceVersion up to now get 410 Gone. */
  compact(): void {
    this.compactedThrough = this.rv;
  }

  /** New watch requests are answered only after releaseWatches(). */
  holdWatches(): void {
    this.holding = true;
  }

  releaseWatches(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    for (const go of held) go();
  }

  /** Drops every open watch connection abruptly, as a network failure or API server restart would. */
  dropWatches(): void {
    for (const w of this.open) w.res.socket?.destroy();
    this.open.clear();
  }

  /** Ends every open watch cleanly, as the server does when timeoutSeconds runs out. */
  endWatches(): void {
    for (const w of this.open) w.res.end();
    this.open.clear();
  }

  /** Makes the next request of that kind fail with an HTTP status, a reset connection, or no answer. */
  failNext(kind: 'list' | 'watch', how: number | 'reset' | 'hang'): void {
    this.failures.push({ kind, how });
  }

  /** Resolves with the first request of that kind at or after index `from` of `requests`. */
  async request(kind: 'list' | 'watch', from = 0): Promise<SeenRequest> {
    for (;;) {
      const found = this.requests.slice(from).find((r) => r.kind === kind);
      if (found) return found;
      await once(this, 'request');
    }
  }

  count(kind: 'list' | 'watch'): number {
    return this.requests.filter((r) => r.kind === kind).length;
  }

  private pod(name: string): Pod {
    const pod = this.pods.get(name);
    if (!pod) throw new Error(`no pod ${name}`);
    return pod;
  }

  private record(type: string, pod: Pod): void {
    this.rv += 1;
    const versioned: Pod = { ...pod, metadata: { ...pod.metadata, resourceVersion: String(this.rv) } };
    if (type === 'DELETED') this.pods.delete(pod.metadata.name);
    else this.pods.set(pod.metadata.name, versioned);
    this.history.push({ rv: this.rv, type, pod: versioned });
    for (const w of this.open) if (matches(versioned, w.selector)) writeEvent(w.res, type, versioned);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const isWatch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const kind = isWatch ? 'watch' : 'list';
    this.requests.push({ kind, query: url.searchParams, path: url.pathname, authorization: req.headers.authorization, req });
    this.emit('request');

    if (req.headers.authorization !== `Bearer ${TOKEN}` && url.pathname.startsWith('/api')) {
      return sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const podPath = `/api/v1/namespaces/${NS}/pods/`;
    if (req.method === 'DELETE' && url.pathname.startsWith(podPath))
      return this.deleteOne(res, url.pathname.slice(podPath.length));
    if (this.hpa && url.pathname === `/apis/autoscaling/v2/namespaces/${NS}/horizontalpodautoscalers/${this.hpa.name}`) {
      return this.sendHpa(res);
    }
    if (url.pathname !== `/api/v1/namespaces/${NS}/pods`)
      return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
    const failureAt = this.failures.findIndex((f) => f.kind === kind);
    if (failureAt >= 0) {
      const [failure] = this.failures.splice(failureAt, 1);
      if (failure?.how === 'hang') return;
      if (failure?.how === 'reset') return void req.socket.destroy();
      return sendStatus(res, Number(failure?.how), 'InternalError', 'etcdserver: request timed out');
    }
    const selector = parseSelector(url.searchParams.get('labelSelector') ?? '');
    if (!isWatch) return this.list(res, selector);
    const start = () => this.watch(res, selector, url.searchParams);
    if (this.holding) this.held.push(start);
    else start();
  }

  /** A graceful delete as the API answers it: 200 with the pod, now carrying its deletionTimestamp. */
  private deleteOne(res: ServerResponse, name: string): void {
    if (!this.pods.has(name)) return sendStatus(res, 404, 'NotFound', `pods "${name}" not found`);
    this.markTerminating(name);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(this.pod(name)));
  }

  private sendHpa(res: ServerResponse): void {
    const h = this.hpa!;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'HorizontalPodAutoscaler',
        apiVersion: 'autoscaling/v2',
        metadata: { name: h.name, namespace: NS, resourceVersion: String(this.rv) },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: h.name },
          minReplicas: h.min,
          maxReplicas: h.max,
        },
        status: { currentReplicas: h.current, desiredReplicas: h.desired, currentMetrics: [] },
      }),
    );
  }

  private list(res: ServerResponse, selector: Labels): void {
    // Items of a real list carry neither kind nor apiVersion; the list itself does.
    const items = [...this.pods.values()]
      .filter((p) => matches(p, selector))
      .map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items }));
  }

  private watch(res: ServerResponse, selector: Labels, query: URLSearchParams): void {
    if (res.destroyed) return;
    const from = Number(query.get('resourceVersion') ?? '0');
    if (query.has('resourceVersion') && from <= this.compactedThrough) {
      const message = `too old resource version: ${from} (${this.compactedThrough + 1})`;
      if (this.goneAs === 'http') return sendStatus(res, 410, 'Gone', message);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'Expired', code: 410 };
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    if (!query.has('resourceVersion')) {
      for (const pod of this.pods.values()) if (matches(pod, selector)) writeEvent(res, 'ADDED', pod);
    } else {
      for (const e of this.history) if (e.rv > from && matches(e.pod, selector)) writeEvent(res, e.type, e.pod);
    }
    const entry = { res, selector, bookmarks: query.get('allowWatchBookmarks') === 'true' };
    this.open.add(entry);
    res.on('close', () => this.open.delete(entry));
  }
}

function parseSelector(selector: string): Labels {
  const out: Labels = {};
  for (const term of selector.split(',').filter(Boolean)) {
    const [key, value] = term.split('=');
    if (key) out[key] = value ?? '';
  }
  return out;
}

function matches(pod: Pod, selector: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => pod.metadata.labels[k] === v);
}

function writeEvent(res: ServerResponse, type: string, pod: Pod): void {
  res.write(`${JSON.stringify({ type, object: pod })}\n`);
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}

/** A kubeconfig pointing at the fake server with the token it accepts. */
export function fakeKubeConfig(server: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'signaling', token: TOKEN }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'signaling', namespace: NS }],
    currentContext: 'fake',
  });
  return kubeConfig;
}
