// The pod watcher against a fake Kubernetes API server on loopback that speaks the real list and
// watch wire shapes: PodList JSON, newline-delimited watch events, BOOKMARKs, and 410 Gone both as
// an ERROR event carrying a Status and as an HTTP 410 response.
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isInCluster } from '../../src/cluster/in-cluster.js';
import { PodWatcher, type PodWatcherOptions } from '../../src/cluster/pod-watcher.js';

const NS = 'signaling-test';
const SELECTOR = 'app.kubernetes.io/name=signaling';
const SIGNALING = { 'app.kubernetes.io/name': 'signaling', 'pod-template-hash': '7d9f8c6b5' };
const POSTGRES = { 'app.kubernetes.io/name': 'postgres' };
const TOKEN = 'fake-service-account-token';

type Labels = Record<string, string>;
interface Pod {
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
  status: { phase: string; podIP?: string };
}
interface SeenRequest {
  kind: 'list' | 'watch';
  query: URLSearchParams;
  path: string;
  authorization: string | undefined;
  req: IncomingMessage;
}
type Gone = 'event' | 'http';

/** A fake API server holding pods in one namespace with a resourceVersion-ordered event history. */
class FakeKubeApi extends EventEmitter {
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

  addPod(name: string, labels: Labels = SIGNALING, phase = 'Running'): void {
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
      status: { phase, podIP: `10.244.0.${this.uidSeq}` },
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

    if (url.pathname !== `/api/v1/namespaces/${NS}/pods`) return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
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

/** Collects onPodGone calls and lets a test await a given pod. */
class GoneRecorder extends EventEmitter {
  readonly names: string[] = [];
  readonly onPodGone = (name: string): void => {
    this.names.push(name);
    this.emit('gone', name);
  };

  async waitFor(name: string): Promise<void> {
    while (!this.names.includes(name)) await once(this, 'gone');
  }
}

/** Rejects when `promise` takes longer than `ms`, naming what was awaited. */
async function within<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface LogLine {
  level: number;
  msg: string;
  module?: string;
}

let api: FakeKubeApi;
let watcher: PodWatcher | undefined;

async function setUp(extra: Partial<PodWatcherOptions> = {}) {
  api = new FakeKubeApi();
  const server = await api.listen();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'signaling', token: TOKEN }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'signaling', namespace: NS }],
    currentContext: 'fake',
  });
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(JSON.parse(chunk.toString()) as LogLine);
      callback();
    },
  });
  const gone = new GoneRecorder();
  watcher = new PodWatcher({
    namespace: NS,
    labelSelector: SELECTOR,
    onPodGone: gone.onPodGone,
    log: pino({ level: 'debug' }, sink),
    kubeConfig,
    requestTimeoutMs: 2_000,
    minBackoffMs: 5,
    maxBackoffMs: 40,
    ...extra,
  });
  return { api, watcher, gone, logs };
}

afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
  await api?.close();
});

describe('PodWatcher', () => {
  it('lists then watches its own pods with the service account token, from the list resourceVersion', async () => {
    const { api, watcher } = await setUp();
    api.addPod('signaling-a');
    const listedAt = api.resourceVersion;
    await watcher.start();

    const list = await within(api.request('list'), 'the list');
    expect(list.path).toBe(`/api/v1/namespaces/${NS}/pods`);
    expect(list.query.get('labelSelector')).toBe(SELECTOR);
    expect(list.authorization).toBe(`Bearer ${TOKEN}`);
    const watch = await within(api.request('watch'), 'the watch');
    expect(watch.query.get('labelSelector')).toBe(SELECTOR);
    expect(watch.query.get('resourceVersion')).toBe(listedAt);
    expect(watch.query.get('allowWatchBookmarks')).toBe('true');
    expect(Number(watch.query.get('timeoutSeconds'))).toBeGreaterThan(0);
  });

  it('reports a deleted pod of its Deployment, but not pods of other selectors or terminating pods', async () => {
    const { api, watcher, gone } = await setUp();
    api.addPod('signaling-a');
    api.addPod('signaling-b');
    api.addPod('postgres-0', POSTGRES);
    await watcher.start();
    await within(api.request('watch'), 'the watch');

    api.deletePod('postgres-0');
    api.markTerminating('signaling-a');
    api.deletePod('signaling-b');
    await within(gone.waitFor('signaling-b'), 'signaling-b reported');
    expect(gone.names).toEqual(['signaling-b']);
  });

  it('reports a pod once when it fails or succeeds, however often it changes afterwards', async () => {
    const { api, watcher, gone } = await setUp();
    api.addPod('signaling-a');
    api.addPod('signaling-b');
    api.addPod('signaling-c');
    api.addPod('signaling-evicted', SIGNALING, 'Failed');
    await watcher.start();
    await within(gone.waitFor('signaling-evicted'), 'a pod already Failed at start reported by the list');
    await within(api.request('watch'), 'the watch');

    api.setPhase('signaling-a', 'Failed');
    api.setPhase('signaling-a', 'Failed');
    api.deletePod('signaling-a');
    api.deletePod('signaling-evicted');
    api.setPhase('signaling-b', 'Succeeded');
    // Events arrive in order on one stream: once c is reported, everything before it was handled.
    api.deletePod('signaling-c');
    await within(gone.waitFor('signaling-c'), 'signaling-c reported');
    expect(gone.names).toEqual(['signaling-evicted', 'signaling-a', 'signaling-b', 'signaling-c']);
  });

  it('resumes a dropped watch from the last resourceVersion and misses no deletion made in the gap', async () => {
    const { api, watcher, gone } = await setUp();
    api.addPod('signaling-a');
    api.addPod('signaling-b');
    await watcher.start();
    await within(api.request('watch'), 'the first watch');
    api.addPod('signaling-c');
    api.deletePod('signaling-c');
    await within(gone.waitFor('signaling-c'), 'signaling-c reported');
    const lastSeen = api.resourceVersion;

    api.holdWatches();
    const before = api.requests.length;
    api.dropWatches();
    const resumed = await within(api.request('watch', before), 'the resumed watch');
    expect(resumed.query.get('resourceVersion')).toBe(lastSeen);
    api.deletePod('signaling-b'); // while no watch is open
    api.releaseWatches();

    await within(gone.waitFor('signaling-b'), 'signaling-b reported after the resume');
    expect(gone.names).toEqual(['signaling-c', 'signaling-b']);
    expect(api.count('list')).toBe(1);
  });

  it('resumes from the bookmark resourceVersion after the server ends the watch cleanly', async () => {
    const { api, watcher } = await setUp();
    api.addPod('signaling-a');
    await watcher.start();
    await within(api.request('watch'), 'the first watch');

    const bookmarked = api.bookmark();
    api.holdWatches();
    const before = api.requests.length;
    api.endWatches(); // as at timeoutSeconds: the bookmark line is delivered before the end
    const resumed = await within(api.request('watch', before), 'the resumed watch');
    expect(resumed.query.get('resourceVersion')).toBe(bookmarked);
    expect(api.count('list')).toBe(1);
    api.releaseWatches();
  });

  it.each<Gone>(['event', 'http'])('relists after 410 Gone (as %s) and reports pods deleted while it could not watch', async (goneAs) => {
    const { api, watcher, gone, logs } = await setUp();
    api.goneAs = goneAs;
    api.addPod('signaling-a');
    api.addPod('signaling-b');
    api.addPod('signaling-c');
    await watcher.start();
    await within(api.request('watch'), 'the first watch');

    api.holdWatches();
    const before = api.requests.length;
    api.dropWatches();
    await within(api.request('watch', before), 'the resumed watch');
    api.deletePod('signaling-b');
    api.compact();
    api.releaseWatches();

    const relist = await within(api.request('list', before), 'the relist');
    expect(relist.query.get('resourceVersion')).toBeNull();
    await within(gone.waitFor('signaling-b'), 'signaling-b found gone by the relist');
    const rewatch = await within(api.request('watch', api.requests.indexOf(relist)), 'the watch after the relist');
    expect(Number(rewatch.query.get('resourceVersion'))).toBeGreaterThan(0);

    api.deletePod('signaling-c');
    await within(gone.waitFor('signaling-c'), 'signaling-c reported by the new watch');
    expect(gone.names).toEqual(['signaling-b', 'signaling-c']);
    expect(logs.some((l) => l.msg.includes('relisting'))).toBe(true);
  });

  it('survives API errors: start() resolves, it logs, backs off and retries until the API answers', async () => {
    const { api, watcher, gone, logs } = await setUp();
    api.addPod('signaling-a');
    api.addPod('signaling-b');
    api.failNext('list', 500);
    api.failNext('list', 'reset');
    api.failNext('list', 403);
    api.failNext('watch', 503);
    api.failNext('watch', 'reset');

    await expect(watcher.start()).resolves.toBeUndefined();
    await within(api.request('watch'), 'a watch after the failed lists');
    // The failed watches are retried too; once one is open, deletions are reported again.
    while (api.count('watch') < 3) await once(api, 'request');
    api.deletePod('signaling-b');
    await within(gone.waitFor('signaling-b'), 'signaling-b reported');

    expect(api.count('list')).toBe(4);
    const warnings = logs.filter((l) => l.level === 40).map((l) => l.msg);
    expect(warnings.filter((m) => m.startsWith('listing pods failed'))).toHaveLength(3);
    expect(warnings.filter((m) => m.startsWith('pod watch failed'))).toHaveLength(2);
    expect(logs.every((l) => l.module === 'pod-watcher')).toBe(true);
  });

  it('gives up on a list and a watch that never answer, and tries again', async () => {
    const { api, watcher, gone } = await setUp({ requestTimeoutMs: 300, watchTimeoutSeconds: 1 });
    api.addPod('signaling-a');
    api.failNext('list', 'hang');
    api.failNext('watch', 'hang');

    await watcher.start();
    await within(api.request('list', 1), 'a second list after the first timed out');
    await within(api.request('watch'), 'the first watch');
    const first = api.requests.findIndex((r) => r.kind === 'watch');
    await within(api.request('watch', first + 1), 'a second watch after the first timed out');
    api.deletePod('signaling-a');
    await within(gone.waitFor('signaling-a'), 'signaling-a reported');
  });

  it('keeps watching when onPodGone throws, whether the pod was found by a list or a watch event', async () => {
    const { api, watcher, gone, logs } = await setUp();
    api.addPod('signaling-failed', SIGNALING, 'Failed');
    api.addPod('signaling-a');
    api.addPod('signaling-b');
    (watcher as unknown as { opts: PodWatcherOptions }).opts.onPodGone = (name) => {
      gone.onPodGone(name);
      if (name !== 'signaling-b') throw new Error('reaper unavailable');
    };
    await expect(watcher.start()).resolves.toBeUndefined();
    await within(api.request('watch'), 'the watch');
    api.deletePod('signaling-a');
    api.deletePod('signaling-b');
    await within(gone.waitFor('signaling-b'), 'signaling-b reported after throwing callbacks');
    expect(gone.names).toEqual(['signaling-failed', 'signaling-a', 'signaling-b']);
    expect(logs.filter((l) => l.msg === 'onPodGone threw')).toHaveLength(2);
  });

  it('stop() closes the open watch', async () => {
    const { api, watcher } = await setUp();
    api.addPod('signaling-a');
    await watcher.start();
    const watch = await within(api.request('watch'), 'the watch');
    const closed = once(watch.req.socket, 'close');
    await watcher.stop();
    await within(closed, 'the watch connection to close');
  });
});

describe('isInCluster', () => {
  it('is true only with the service host, port and a mounted service account token', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sa-'));
    try {
      const token = join(dir, 'token');
      const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
      expect(isInCluster(env, token)).toBe(false);
      writeFileSync(token, 'x');
      expect(isInCluster(env, token)).toBe(true);
      expect(isInCluster({}, token)).toBe(false);
      expect(isInCluster({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }, token)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
