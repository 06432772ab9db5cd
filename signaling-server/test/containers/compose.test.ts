// docker-compose.yml brought up on the local images and driven from outside, as a user would: real
// WebSocket clients through HAProxy's port published on 127.0.0.1, one node stopped with
// `docker stop` while clients signal, and Prometheus's targets API. Torn down at the end, also
// after a failure; a run that died half-way is cleaned up by the next one (same project name).
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { SignalingClient } from '../../../client/src/index.js';
import { freePort } from '../support/cluster.js';
import { compose, docker, until } from '../support/docker.js';
import { TestClient } from '../support/test-client.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PROJECT = 'signaling-containers-test';
const NODES = ['signaling-1', 'signaling-2', 'signaling-3'];
const images = inject('images');
const opened: TestClient[] = [];
let env: NodeJS.ProcessEnv;
let lbUrl: string;
let prometheusUrl: string;
let hasFailed = false;

const composeRun = (args: string[], timeoutMs = 180_000) => compose(PROJECT, args, { env, cwd: ROOT, timeoutMs });
const containerOf = async (service: string) => composeRun(['ps', '-q', service]);

function note(what: string, startedAt: number): void {
  process.stderr.write(`[containers] ${what}: ${((performance.now() - startedAt) / 1000).toFixed(1)} s\n`);
}

/** Test clients through the load balancer, one on each node (HAProxy balances by least connections). */
async function oneClientPerNode(): Promise<Map<string, TestClient>> {
  const byNode = new Map<string, TestClient>();
  const extra: TestClient[] = [];
  await until(
    'a client on each of the three nodes',
    async () => {
      const client = await TestClient.connect(lbUrl);
      opened.push(client);
      if (byNode.has(client.welcome.node)) extra.push(client);
      else byNode.set(client.welcome.node, client);
      return byNode.size === NODES.length ? byNode : undefined;
    },
    60_000,
    200,
  );
  for (const c of extra) c.close();
  return byNode;
}

beforeAll(async () => {
  const [signalingPort, prometheusPort] = [await freePort(), await freePort()];
  env = {
    ...process.env,
    ...images,
    PUBLISH_ADDRESS: '127.0.0.1',
    SIGNALING_PORT: String(signalingPort),
    PROMETHEUS_PORT: String(prometheusPort),
  };
  lbUrl = `ws://127.0.0.1:${signalingPort}/ws`;
  prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
  await composeRun(['down', '-v', '--remove-orphans', '-t', '1']);
  const started = performance.now();
  await composeRun(['up', '-d', '--no-build']);
  note('compose up', started);
}, 300_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') hasFailed = true;
});

afterAll(async () => {
  for (const c of opened) c.drop();
  if (hasFailed)
    process.stderr.write(`${await composeRun(['logs', '--no-color', '--tail', '40']).catch((e: Error) => e.message)}\n`);
  const started = performance.now();
  await composeRun(['down', '-v', '--remove-orphans', '-t', '5']);
  note('compose down', started);
}, 120_000);

describe('docker compose up', () => {
  it('publishes the load balancer and Prometheus on 127.0.0.1 only', async () => {
    for (const service of ['lb', 'prometheus']) {
      const ports = JSON.parse(
        await docker(['inspect', '-f', '{{json .NetworkSettings.Ports}}', await containerOf(service)]),
      ) as Record<string, { HostIp: string }[] | null>;
      const bindings = Object.values(ports).flatMap((b) => b ?? []);
      expect(bindings.length, service).toBeGreaterThan(0);
      for (const b of bindings) expect(b.HostIp, service).toBe('127.0.0.1');
    }
  });

  it('clients on three nodes behind the load balancer join one room, signal, broadcast and share state', async () => {
    const byNode = await oneClientPerNode();
    expect([...byNode.keys()].sort()).toEqual(NODES);
    const [a, b, c] = NODES.map((n) => byNode.get(n)!);
    const room = `compose-${Date.now().toString(36)}`;
    const ja = await a!.join(room, { name: 'a' });
    const jb = await b!.join(room, { name: 'b' });
    const jc = await c!.join(room, { name: 'c' });
    expect(jc.peers.map((p) => p.id).sort()).toEqual([ja.self.id, jb.self.id].sort());
    await a!.waitForType('peer-joined', (m) => m.peer.id === jc.self.id);

    a!.send({ type: 'signal', room, to: jb.self.id, data: { sdp: 'offer-from-a' } });
    expect(await b!.waitForType('signal')).toMatchObject({ from: ja.self.id, data: { sdp: 'offer-from-a' } });

    c!.send({ type: 'broadcast', room, data: { hello: 'all' } });
    for (const peer of [a!, b!])
      expect(await peer.waitForType('broadcast')).toMatchObject({ from: jc.self.id, data: { hello: 'all' } });

    expect(await a!.request({ type: 'state', room, data: { topic: 'x' }, version: 0 })).toMatchObject({
      type: 'ack',
      version: 1,
    });
    for (const peer of [b!, c!])
      expect(await peer.waitForType('state')).toMatchObject({ version: 1, data: { topic: 'x' }, from: ja.self.id });
    const conflict = await b!.request({ type: 'state', room, data: { topic: 'y' }, version: 0 });
    expect(conflict).toMatchObject({ type: 'error', code: 'version-conflict', state: { version: 1, data: { topic: 'x' } } });
    for (const client of [a!, b!, c!]) expect(client.violations).toEqual([]);
  });

  it('Prometheus scrapes every node', async () => {
    type Target = { labels: Record<string, string>; health: string };
    const targets = await until(
      'Prometheus to report all three nodes up',
      async () => {
        const body = (await (await fetch(`${prometheusUrl}/api/v1/targets?state=active`)).json()) as {
          data: { activeTargets: Target[] };
        };
        const up = body.data.activeTargets.filter((t) => t.labels.job === 'signaling' && t.health === 'up');
        return up.length === NODES.length ? up : undefined;
      },
      60_000,
      1000,
    );
    expect(targets.map((t) => t.labels.pod).sort()).toEqual(NODES);
  }, 90_000);

  it('a node stopped with docker stop mid-call: its clients resume on the others with no signal lost, duplicated or reordered', async () => {
    const ROOMS = 6;
    const members: { client: SignalingClient; room: string; id: string; firstNode: string }[] = [];
    for (let r = 0; r < ROOMS; r++) {
      const room = `stop-${Date.now().toString(36)}-${r}`;
      for (let j = 0; j < 2; j++) {
        const client = new SignalingClient({
          url: lbUrl,
          WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
          reconnect: { initialDelayMs: 200, maxDelayMs: 1000, factor: 2, jitter: 0.5, maxAttempts: Infinity },
        });
        const { node } = await client.connect();
        const joined = await client.join(room, { name: `m${j}` });
        members.push({ client, room, id: joined.self.id, firstNode: node });
      }
    }
    // Each member knows its peer before the watch starts: a peer-joined still on its way is not churn.
    await until(
      'every member seeing its peer',
      async () =>
        members.every((m) =>
          members.some((o) => o.room === m.room && o !== m && m.client.room(m.room)?.peers.some((p) => p.id === o.id)),
        )
          ? true
          : undefined,
      10_000,
      50,
    );
    const churn: string[] = [];
    for (const m of members) {
      m.client.on('peer-joined', (e) => churn.push(`peer-joined ${e.peer.id} seen by ${m.id}`));
      m.client.on('peer-left', (e) => churn.push(`peer-left ${e.peer.id} (${e.reason}) seen by ${m.id}`));
      m.client.on('joined', (e) => {
        if (e.isRejoin && (!e.resumed || e.self.id !== m.id)) churn.push(`lost its id: ${m.id}`);
      });
    }
    // The node holding the first member goes; every node holds some (least connections).
    const victim = members[0]!.firstNode;
    const moving = members.filter((m) => m.firstNode === victim);
    expect(moving.length).toBeGreaterThan(0);

    const received = new Map<string, number[]>();
    const sent = new Map<string, number>();
    for (const m of members) {
      m.client.on('signal', (e) => {
        const key = `${e.from}>${m.id}`;
        if (!received.has(key)) received.set(key, []);
        received.get(key)!.push((e.data as { seq: number }).seq);
      });
    }
    let isSending = true;
    const timers = members.map((m) => {
      const peer = members.find((o) => o.room === m.room && o !== m)!;
      let seq = 0;
      return setInterval(() => {
        if (!isSending) return;
        void m.client.signal(m.room, peer.id, { seq }, { ack: false });
        sent.set(`${m.id}>${peer.id}`, seq++);
      }, 50);
    });
    try {
      await until(
        'signals flowing in every room',
        async () => (received.size === members.length ? true : undefined),
        10_000,
        100,
      );

      const started = performance.now();
      await docker(['stop', '--time', '30', await containerOf(victim)], 60_000);
      note(`docker stop ${victim}`, started);
      expect(await docker(['inspect', '-f', '{{.State.ExitCode}}', await containerOf(victim)])).toBe('0');
      await until(
        `the clients of ${victim} back on the other nodes`,
        async () =>
          moving.every((m) => m.client.state === 'open' && m.client.node && m.client.node !== victim) ? true : undefined,
        30_000,
        100,
      );
      // Keep signalling a while on the new nodes.
      const mark = new Map([...sent]);
      await until(
        'signals flowing after the move',
        async () => ([...mark].every(([k, last]) => (received.get(k)?.at(-1) ?? -1) > last) ? true : undefined),
        15_000,
        100,
      );
    } finally {
      isSending = false;
      timers.forEach(clearInterval);
    }
    await until(
      'every signal sent to have arrived',
      async () => ([...sent].every(([k, last]) => (received.get(k)?.at(-1) ?? -1) >= last) ? true : undefined),
      15_000,
      100,
    ).catch(
      () => undefined, // the exact comparison below says what is missing
    );
    for (const m of members) m.client.close();

    expect(churn).toEqual([]);
    const broken: string[] = [];
    for (const [key, last] of sent) {
      const got = received.get(key) ?? [];
      const isExact = got.length === last + 1 && got.every((v, i) => v === i);
      if (!isExact)
        broken.push(`${key}: ${got.length}/${last + 1} received, first out of place at ${got.findIndex((v, i) => v !== i)}`);
    }
    expect(broken).toEqual([]);
  }, 120_000);
});
