// The pod watcher against a fake Kubernetes API server on loopback that speaks the real list and
// watch wire shapes: PodList JSON, newline-delimited watch events, BOOKMARKs, and 410 Gone both as
// an ERROR event carrying a Status and as an HTTP 410 response.
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isInCluster } from '../../src/cluster/in-cluster.js';
import { PodWatcher, type PodWatcherOptions } from '../../src/cluster/pod-watcher.js';
import { FakeKubeApi, NS, POSTGRES, SELECTOR, SIGNALING, TOKEN, fakeKubeConfig, type Gone } from '../support/fake-kube-api.js';

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
  const kubeConfig = fakeKubeConfig(server);
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

  it.each<Gone>(['event', 'http'])(
    'relists after 410 Gone (as %s) and reports pods deleted while it could not watch',
    async (goneAs) => {
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
    },
  );

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
