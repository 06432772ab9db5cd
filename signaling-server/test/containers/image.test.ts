// The project image, built and run the way the Kubernetes manifests run it: the user, read-only
// root file system, dropped capabilities and /tmp volume of the rendered prod Deployment, on a
// Docker network with the Postgres and Redis look-alikes. Reached only through a port published on
// 127.0.0.1.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../support/cluster.js';
import { docker, healthOf, run, until } from '../support/docker.js';
import { TestClient } from '../support/test-client.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const images = inject('images');
const suffix = randomBytes(4).toString('hex');
const network = `signaling-image-test-${suffix}`;
const names = { postgres: `sig-img-pg-${suffix}`, redis: `sig-img-redis-${suffix}`, node: `sig-img-node-${suffix}` };
const opened: TestClient[] = [];

let pod: Obj;
let container: Obj;
let url: string;

/** `docker run` flags for what the manifests' securityContext and volumes say. */
function securityFlags(): string[] {
  const sc = { ...pod.securityContext, ...container.securityContext } as Obj;
  const flags = [`--user=${sc.runAsUser}:${sc.runAsGroup}`];
  if (sc.readOnlyRootFilesystem) flags.push('--read-only');
  for (const cap of sc.capabilities?.drop ?? []) flags.push(`--cap-drop=${cap}`);
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt=no-new-privileges');
  // Every emptyDir the pod mounts becomes a tmpfs.
  const emptyDirs = new Set((pod.volumes as Obj[]).filter((v) => v.emptyDir).map((v) => v.name as string));
  for (const m of container.volumeMounts as Obj[]) if (emptyDirs.has(m.name)) flags.push(`--tmpfs=${m.mountPath}`);
  return flags;
}

const envOf = (name: string) => (container.env as Obj[]).find((e) => e.name === name)?.value as string;

async function connect(): Promise<TestClient> {
  const client = await TestClient.connect(url);
  opened.push(client);
  return client;
}

beforeAll(async () => {
  const rendered = await run('kubectl', ['kustomize', 'k8s/overlays/prod'], { cwd: ROOT });
  const deployment = parseAllDocuments(rendered)
    .map((d) => d.toJS() as Obj)
    .find((o) => o?.kind === 'Deployment' && o.metadata.name === 'signaling')!;
  pod = deployment.spec.template.spec;
  container = (pod.containers as Obj[]).find((c) => c.name === 'signaling')!;

  await docker(['network', 'create', network]);
  await docker([
    'run',
    '-d',
    '--name',
    names.postgres,
    '--network',
    network,
    '--network-alias',
    'postgres',
    '-e',
    'POSTGRES_USER=signaling',
    '-e',
    'POSTGRES_PASSWORD=image-test',
    '-e',
    'POSTGRES_DB=signaling',
    images.POSTGRES_IMAGE,
  ]);
  await docker(['run', '-d', '--name', names.redis, '--network', network, '--network-alias', 'redis', images.REDIS_IMAGE]);
  await until(
    'the Postgres look-alike',
    async () => ((await docker(['exec', names.postgres, 'pg_isready', '-h', '127.0.0.1', '-U', 'signaling'])) ? true : undefined),
    60_000,
  );

  const port = await freePort();
  await docker([
    'run',
    '-d',
    '--name',
    names.node,
    '--network',
    network,
    '-p',
    `127.0.0.1:${port}:${envOf('PORT')}`,
    ...securityFlags(),
    '-e',
    'NODE_ID=image-test',
    '-e',
    `PORT=${envOf('PORT')}`,
    '-e',
    `DRAIN_TIMEOUT_MS=${envOf('DRAIN_TIMEOUT_MS')}`,
    '-e',
    'K8S_POD_WATCH=off',
    '-e',
    'DATABASE_URL=postgres://signaling:image-test@postgres:5432/signaling',
    '-e',
    'REDIS_URL=redis://redis:6379',
    images.SIGNALING_IMAGE,
  ]);
  url = `ws://127.0.0.1:${port}/ws`;
  await until(
    'the node to answer /readyz',
    async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok ? true : undefined),
    60_000,
  );
}, 180_000);

afterAll(async () => {
  for (const c of opened) c.drop();
  await docker(['rm', '-f', '-v', names.node, names.postgres, names.redis]).catch(() => undefined);
  await docker(['network', 'rm', network]).catch(() => undefined);
});

describe('the project image under the manifests security context', () => {
  it('declares the numeric non-root user the manifests run it as', async () => {
    const user = await docker(['image', 'inspect', '-f', '{{.Config.User}}', images.SIGNALING_IMAGE]);
    const sc = { ...pod.securityContext, ...container.securityContext } as Obj;
    expect(sc.runAsNonRoot).toBe(true);
    expect(user).toBe(`${sc.runAsUser}:${sc.runAsGroup}`);
    expect(await docker(['exec', names.node, 'id', '-u'])).toBe(String(sc.runAsUser));
  });

  it('runs with a read-only root, a writable /tmp and no capabilities', async () => {
    await expect(docker(['exec', names.node, 'touch', '/app/probe'])).rejects.toThrow(/Read-only file system/);
    await expect(docker(['exec', names.node, 'touch', '/probe'])).rejects.toThrow(/Read-only file system/);
    await docker(['exec', names.node, 'touch', '/tmp/probe']);
    const status = await docker(['exec', names.node, 'cat', '/proc/1/status']);
    for (const set of ['CapPrm', 'CapEff', 'CapBnd']) expect(new RegExp(`${set}:\\s+0+$`, 'm').test(status), set).toBe(true);
    expect(/NoNewPrivs:\s+1/.test(status)).toBe(true);
  });

  it('serves the protocol: two clients join a room and trade a signal', async () => {
    const a = await connect();
    const b = await connect();
    expect(a.welcome.node).toBe('image-test');
    const room = `image-${suffix}`;
    await a.join(room);
    const joined = await b.join(room);
    const [peer] = joined.peers;
    await a.waitForType('peer-joined');
    b.send({ type: 'signal', room, to: peer!.id, data: { sdp: 'offer' } });
    const signal = await a.waitForType('signal');
    expect(signal.data).toEqual({ sdp: 'offer' });
  });

  it('has a HEALTHCHECK that turns healthy, and whose command fails when nothing answers', async () => {
    const test = JSON.parse(
      await docker(['image', 'inspect', '-f', '{{json .Config.Healthcheck.Test}}', images.SIGNALING_IMAGE]),
    ) as string[];
    expect(test[0]).toBe('CMD');
    await until('the health check to pass', async () => ((await healthOf(names.node)) === 'healthy' ? true : undefined), 60_000);
    // The same command pointed at a port nothing listens on: the check can fail.
    await expect(docker(['exec', '-e', 'PORT=1', names.node, ...test.slice(1)])).rejects.toThrow();
  });

  it("has the command of the manifests' preStop hook", async () => {
    const [command] = container.lifecycle.preStop.exec.command as string[];
    await docker(['exec', names.node, command!, '0']);
  });

  it('drains on docker stop: clients get reconnect and close 1012, and the node exits 0 within DRAIN_TIMEOUT_MS', async () => {
    const client = await connect();
    const drainMs = Number(envOf('DRAIN_TIMEOUT_MS'));
    const started = performance.now();
    const grace = String(pod.terminationGracePeriodSeconds);
    const stopped = docker(['stop', '--time', grace, names.node], 60_000);
    const reconnect = await client.waitForType('reconnect', () => true, drainMs);
    expect(reconnect.retryAfterMs).toBeGreaterThanOrEqual(0);
    expect((await client.closed).code).toBe(1012);
    await stopped;
    expect(performance.now() - started).toBeLessThan(drainMs + 5000);
    expect(await docker(['inspect', '-f', '{{.State.ExitCode}}', names.node])).toBe('0');
  }, 60_000);
});
