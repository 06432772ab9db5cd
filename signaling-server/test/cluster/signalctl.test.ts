// signalctl as an operator runs it: against two live nodes through the API, against a fake
// Kubernetes API for pods, the autoscaler and drains, and with what is missing said in one line.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminAuth } from '../../src/api/admin-auth.js';
import { createPayloadVerifier } from '../../src/auth/token-verifier.js';
import {
  freePort,
  killAllNodes,
  startCluster,
  startNode,
  untilMetric,
  type NodeOptions,
  type RunningNode,
} from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { FakeKubeApi, SIGNALING, fakeKubeConfig } from '../support/fake-kube-api.js';
import { eventually } from '../support/eventually.js';
import { ADMIN_API_KEYS, READ_KEY, WRITE_KEY, callApi } from '../support/operator-api.js';

const CLI = fileURLToPath(new URL('../../dist/cli/signalctl.js', import.meta.url));
let a: RunningNode;
let b: RunningNode;
let clusterOptions: NodeOptions;
let home: string;
const clients = new ClientTracker();

beforeAll(async () => {
  const cluster = await startCluster(2, { env: { ADMIN_API_KEYS, NODE_HEARTBEAT_MS: '500', DRAIN_TIMEOUT_MS: '2000' } });
  [a, b] = cluster.nodes as [RunningNode, RunningNode];
  clusterOptions = cluster.options;
  // A home without ~/.kube: Kubernetes is used only when a test points at the fake.
  home = mkdtempSync(join(tmpdir(), 'signalctl-'));
});

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
  rmSync(home, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function signalctl(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const base = { PATH: process.env.PATH ?? '', HOME: home, SIGNALCTL_URL: a.httpUrl, SIGNALCTL_KEY: WRITE_KEY };
    execFile(process.execPath, [CLI, ...args], { env: { ...base, ...env }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Writes a kubeconfig for the fake API server and returns its path. */
function kubeconfigFor(server: string): string {
  const path = join(home, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, fakeKubeConfig(server).exportConfig());
  return path;
}

describe('against live nodes', () => {
  it('lists rooms and shows one room with each participant and its node, as tables and as JSON', async () => {
    const room = newRoom('ctl');
    const alice = await clients.connect(a);
    const bob = await clients.connect(b);
    const aj = await alice.join(room, { name: 'alice' });
    const bj = await bob.join(room, { name: 'bob' });

    const rooms = await signalctl(['rooms']);
    expect(rooms.code).toBe(0);
    expect(rooms.stdout).toMatch(/^ROOM\s+PARTICIPANTS\s+STATE\s+UPDATED/);
    expect(rooms.stdout).toMatch(new RegExp(`${room}\\s+2\\s+v0`));
    const json = JSON.parse((await signalctl(['rooms', '--json'])).stdout);
    expect(json.rooms.find((r: { name: string }) => r.name === room).participants).toBe(2);

    const one = await signalctl(['room', room]);
    expect(one.stdout).toContain(`room ${room}: 2 participant(s), state v0`);
    // Anonymous mode: no identity, every grant.
    expect(one.stdout).toMatch(
      new RegExp(`${aj.self.id}\\s+alice\\s+-\\s+anonymous:signal,broadcast,state\\s+${a.id}\\s+connected`),
    );
    expect(one.stdout).toMatch(
      new RegExp(`${bj.self.id}\\s+bob\\s+-\\s+anonymous:signal,broadcast,state\\s+${b.id}\\s+connected`),
    );
  });

  it('send, kick and close reach the clients on both nodes', async () => {
    const room = newRoom('ctl');
    const alice = await clients.connect(a);
    const bob = await clients.connect(b);
    const carol = await clients.connect(b);
    await alice.join(room);
    const bj = await bob.join(room);
    await carol.join(room);

    const sent = await signalctl(['send', room, '{"notice":"hi"}', '--to', bj.self.id]);
    expect(sent.stdout.trim(), sent.stderr).toBe('sent to 1 participant(s)');
    expect((await bob.waitForType('server')).data).toEqual({ notice: 'hi' });

    const kicked = await signalctl(['kick', room, bj.self.id, '--reason', 'bye']);
    expect(kicked.stdout.trim()).toBe(`removed ${bj.self.id} from ${room}`);
    expect(await bob.waitForType('kicked')).toMatchObject({ room, reason: 'bye' });
    expect((await alice.waitForType('peer-left')).reason).toBe('kicked');

    const closed = await signalctl(['close', room]);
    expect(closed.stdout.trim()).toBe(`closed ${room}: removed 2 participant(s)`);
    for (const c of [alice, carol]) expect((await c.closed).code).toBe(4001);
    expect(alice.seen((m) => m.type === 'server')).toEqual([]);
  });

  it('status without Kubernetes shows every node with its connections', async () => {
    await clients.connect(b);
    await untilMetric(b, 'signaling_connections', (n) => n >= 1);
    let run: Run;
    const deadline = Date.now() + 5000;
    do {
      run = await signalctl(['status', '--json']);
    } while (
      !((JSON.parse(run.stdout).nodes.find((n: { id: string }) => n.id === b.id)?.connections ?? 0) >= 1) &&
      Date.now() < deadline
    );
    const nodes = JSON.parse(run.stdout).nodes;
    expect(nodes.map((n: { id: string }) => n.id)).toEqual(expect.arrayContaining([a.id, b.id]));
    const human = await signalctl(['status']);
    expect(human.stdout).toMatch(/^NAME\s+READY\s+RESTARTS\s+POD\s+NODE\s+STATUS\s+CONNECTIONS\s+PARTICIPANTS\s+HEARTBEAT\n/);
    expect(human.stdout).toMatch(new RegExp(`${b.id}\\s+-\\s+-\\s+-\\s+${b.id}\\s+up\\s+[1-9]`));
  });

  it('status lists a node that died as dead, after the live ones', async () => {
    const c = await startNode(clusterOptions);
    await c.kill();
    await eventually(
      'the killed node judged dead',
      20_000,
      () => callApi(a, 'GET', '/v1/cluster?dead=true'),
      (r) => r.body.nodes.some((n: { id: string; status: string }) => n.id === c.id && n.status === 'dead'),
    );
    const human = await signalctl(['status']);
    expect(human.stdout).toMatch(new RegExp(`\\n${c.id}\\s+-\\s+-\\s+-\\s+${c.id}\\s+dead\\s+`));
    const rows = human.stdout.trim().split('\n').slice(1);
    expect(rows.findIndex((r) => r.startsWith(c.id))).toBeGreaterThan(rows.findIndex((r) => r.startsWith(a.id)));
    const json = JSON.parse((await signalctl(['status', '--json'])).stdout);
    expect(json.nodes.find((n: { id: string }) => n.id === c.id)).toMatchObject({ status: 'dead' });
  });

  it('takes a key as ADMIN_API_KEYS writes it (write:KEY) and a node address without http://', async () => {
    const pasted = await signalctl(['rooms', '--json'], { SIGNALCTL_KEY: `write:${WRITE_KEY}` });
    expect(pasted.stderr).toBe('');
    expect(JSON.parse(pasted.stdout)).toHaveProperty('rooms');
    const short = await signalctl(['rooms', '--json'], { SIGNALCTL_URL: `127.0.0.1:${a.port}` });
    expect(short.stderr).toBe('');
    expect(JSON.parse(short.stdout)).toHaveProperty('rooms');
    // Anyone else who sends the entry whole is told what to send instead.
    const reply = await callApi(a, 'GET', '/v1/rooms', { key: `read:${READ_KEY}` });
    expect(reply).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
    expect(reply.body.message).toBe(
      'unknown API key: send the key without its "read:" prefix (ADMIN_API_KEYS=read:KEY means the key is KEY)',
    );
  });
});

describe('one-line errors', () => {
  it('says which setting is missing or wrong, and exits 1', async () => {
    const noKey = await signalctl(['rooms'], { SIGNALCTL_KEY: '' });
    expect(noKey).toMatchObject({ code: 1, stdout: '' });
    expect(noKey.stderr).toBe(
      'signalctl: no API key: set SIGNALCTL_KEY or pass --key (a key from ADMIN_API_KEYS, or an admin token)\n',
    );
    const noCluster = await signalctl(['status'], { SIGNALCTL_URL: '' });
    expect(noCluster.stderr).toMatch(/^signalctl: no cluster found: set KUBECONFIG .*\n$/);
    const readOnly = await signalctl(['close', 'some-room'], { SIGNALCTL_KEY: READ_KEY });
    expect(readOnly.stderr).toBe('signalctl: 403 forbidden: this key or token may only read\n');
    const wrongKey = await signalctl(['rooms'], { SIGNALCTL_KEY: 'not-a-key-at-all-123456' });
    expect(wrongKey.stderr).toBe('signalctl: 401 unauthorized: unknown API key\n');
    const nobody = await signalctl(['rooms'], { SIGNALCTL_URL: `http://127.0.0.1:${await freePort()}` });
    expect(nobody.stderr).toMatch(/^signalctl: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)\n$/);
    const deadKube = await signalctl(['status', '--kubeconfig', kubeconfigFor(`http://127.0.0.1:${await freePort()}`)]);
    expect(deadKube.code).toBe(1);
    expect(deadKube.stderr).toMatch(/^signalctl: cannot list pods: .*\n$/);
    expect((await signalctl(['launch'])).stderr).toBe('signalctl: unknown command "launch"; try signalctl help\n');
    const badUrl = await signalctl(['rooms'], { SIGNALCTL_URL: 'http://[nope' });
    expect(badUrl).toMatchObject({
      code: 1,
      stderr: "signalctl: http://[nope is not a node's URL (e.g. http://localhost:8080)\n",
    });
  });

  it('with no command at all prints the usage on stderr and exits 2; help prints it on stdout', async () => {
    const bare = await signalctl([]);
    expect(bare).toMatchObject({ code: 2, stdout: '' });
    expect(bare.stderr).toMatch(/^usage: signalctl <command> \[options\]\n/);
    const help = await signalctl(['help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^usage: signalctl/);
  });
});

describe('with Kubernetes', () => {
  it("status joins pods (readiness, restarts), the autoscaler and each node's load", async () => {
    const kube = new FakeKubeApi();
    const kubeconfig = kubeconfigFor(await kube.listen());
    try {
      kube.addPod(a.id, SIGNALING, 'Running', { ready: true, restarts: 0 });
      kube.addPod(b.id, SIGNALING, 'Running', { ready: false, restarts: 3 });
      kube.addPod('postgres-0', { 'app.kubernetes.io/name': 'postgres' });
      kube.hpa = { name: 'signaling', min: 2, max: 10, current: 2, desired: 3 };
      const json = JSON.parse(
        (await signalctl(['status', '--json', '--kubeconfig', kubeconfig, '--selector', 'app.kubernetes.io/name=signaling']))
          .stdout,
      );
      expect(json.hpa).toEqual({ name: 'signaling', current: 2, desired: 3, min: 2, max: 10 });
      expect(json.pods.map((p: { name: string }) => p.name).sort()).toEqual([a.id, b.id].sort());
      expect(json.pods.find((p: { name: string }) => p.name === b.id)).toMatchObject({
        isReady: false,
        restarts: 3,
        phase: 'Running',
      });
      expect(json.nodes.map((n: { id: string }) => n.id)).toEqual(expect.arrayContaining([a.id, b.id]));

      const human = await signalctl(['status', '--kubeconfig', kubeconfig, '--selector', 'app.kubernetes.io/name=signaling']);
      expect(human.stdout).toContain('autoscaler signaling: 2 current, 3 desired (min 2, max 10)');
      expect(human.stdout).toMatch(new RegExp(`${b.id}\\s+no\\s+3\\s+Running\\s+${b.id}\\s+up\\s+\\d+`));
      expect(kube.requests.every((r) => r.authorization === 'Bearer fake-service-account-token')).toBe(true);
    } finally {
      await kube.close();
    }
  });

  it('drain <pod> deletes the pod gracefully through the API server', async () => {
    const kube = new FakeKubeApi();
    const kubeconfig = kubeconfigFor(await kube.listen());
    try {
      kube.addPod('signaling-7d9f8c6b5-x2x9q');
      const run = await signalctl(['drain', 'signaling-7d9f8c6b5-x2x9q', '--kubeconfig', kubeconfig]);
      expect(run.stderr).toBe('');
      expect(run.stdout).toContain('pod signaling-7d9f8c6b5-x2x9q is draining');
      const deletes = kube.requests.filter((r) => r.req.method === 'DELETE');
      expect(deletes.map((r) => r.path)).toEqual(['/api/v1/namespaces/signaling-test/pods/signaling-7d9f8c6b5-x2x9q']);
      const missing = await signalctl(['drain', 'no-such-pod', '--kubeconfig', kubeconfig]);
      expect(missing.stderr).toBe('signalctl: cannot delete pod no-such-pod: not found in namespace signaling-test\n');
    } finally {
      await kube.close();
    }
  });
});

describe('tokens and drains without Kubernetes', () => {
  it('token --admin mints a token the API accepts with the grant asked for', async () => {
    const secret = 'signalctl-test-secret-0123456789abcdef';
    const run = await signalctl(['token', '--admin', 'read', '--sub', 'alice'], { AUTH_JWT_SECRET: secret });
    expect(run.code).toBe(0);
    const auth = new AdminAuth([], createPayloadVerifier({ secret }));
    expect(await auth.authenticate({ authorization: `Bearer ${run.stdout.trim()}` })).toEqual({
      ok: true,
      access: 'read',
      who: 'token:alice',
    });
    expect((await signalctl(['token', '--admin', 'read'])).stderr).toMatch(/^signalctl: AUTH_JWT_SECRET is not set/);
  });

  it('drain <node> through the API: the node sends its clients away and exits', async () => {
    const bob = await clients.connect(b);
    const run = await signalctl(['drain', b.id]);
    expect(run.stdout.trim()).toBe(`node ${b.id} is draining: its clients move to the other nodes, then it exits`);
    await bob.waitForType('reconnect');
    expect(await b.exited).toBe(0);
  });
});
