// The join hook against a real application backend (test/support/join-hook-backend.ts, which
// checks every request with the `standardwebhooks` library): who gets in and with what rights,
// what a client sees when the backend is slow, broken or down, resumes, re-checks, fail-open, and
// a hook combined with tokens.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  freePort,
  killAllNodes,
  metric,
  startNode,
  testRedisUrl,
  uniqueName,
  type RunningNode,
} from '../support/cluster.js';
import { ClientTracker, newRoom } from '../support/clients.js';
import { HOOK_SECRET, JoinHookBackend } from '../support/join-hook-backend.js';
import { ADMIN_API_KEYS, WRITE_KEY, callApi } from '../support/operator-api.js';
import type { TestClient } from '../support/test-client.js';

const CLI = fileURLToPath(new URL('../../dist/cli/signalctl.js', import.meta.url));
const JWT_SECRET = 'join-hook-test-jwt-secret-0123456789';
const TIMEOUT_MS = 300;
const BREAKER_FAILURES = 5;
const COOLDOWN_MS = 1000;

const clients = new ClientTracker();
/** A and B: hook on, not asked on resume. */
let a: RunningNode;
let b: RunningNode;
let backend: JoinHookBackend;

beforeAll(async () => {
  backend = await JoinHookBackend.start();
  const common = {
    databaseUrl: await createTestDatabase(),
    redisUrl: testRedisUrl(),
    redisPrefix: `${uniqueName('t')}:`,
  };
  const env = {
    JOIN_HOOK_URL: backend.url,
    JOIN_HOOK_SECRET: HOOK_SECRET,
    JOIN_HOOK_TIMEOUT_MS: String(TIMEOUT_MS),
    JOIN_HOOK_HEADERS: 'x-tenant',
    JOIN_HOOK_BREAKER_FAILURES: String(BREAKER_FAILURES),
    JOIN_HOOK_BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
    ADMIN_API_KEYS,
  };
  a = await startNode({ ...common, env });
  b = await startNode({ ...common, env });
  shared = common;
});

let shared: { databaseUrl: string; redisUrl: string; redisPrefix: string };

afterAll(async () => {
  expect(clients.dropAll()).toEqual([]);
  await killAllNodes();
  await backend.stop();
});

const allow = (answer: Record<string, unknown> = {}) => ({ body: { allow: true, ...answer } });

async function joinReply(client: TestClient, room: string, extra: Record<string, unknown> = {}) {
  return client.request({ type: 'join', room, ...extra }, 10_000);
}

/** A join that must fail: its error frame, and how long it took. */
async function refusedJoin(node: RunningNode, room: string) {
  const client = await clients.connect(node);
  const started = Date.now();
  const reply = await joinReply(client, room);
  return { reply, ms: Date.now() - started };
}

describe('the backend decides who joins', () => {
  it('an allowed join takes the identity, name and meta the backend gave; the request was signed and told it what it needs', async () => {
    const room = newRoom('hook-allow');
    backend.answer = () => allow({ sub: 'user-42', name: 'Ada', meta: { plan: 'pro' } });
    const before = backend.calls.length;
    const client = await clients.connect(a, '', { 'x-tenant': 'acme', 'x-secret': 'nope', cookie: 'session=abc; theme=dark' });
    const joined = await client.join(room, { name: 'self-chosen', meta: { plan: 'free' } });
    expect(joined.self).toMatchObject({ name: 'Ada', meta: { plan: 'pro' } });

    const call = backend.calls[before]!;
    expect(call.isVerified).toBe(true);
    expect(call.body).toMatchObject({
      type: 'join',
      room,
      participant: null,
      name: 'self-chosen',
      meta: { plan: 'free' },
      address: '127.0.0.1',
      token: null,
      claims: null,
      cookies: { session: 'abc', theme: 'dark' },
      // Only the headers JOIN_HOOK_HEADERS names.
      headers: { 'x-tenant': 'acme' },
    });

    // The operator API and signalctl show who it is and where that came from.
    const { body } = await callApi(a, 'GET', `/v1/rooms/${room}/participants`);
    expect(body.participants).toEqual([
      expect.objectContaining({
        id: joined.self.id,
        identity: 'user-42',
        source: 'hook',
        grants: ['signal', 'broadcast', 'state'],
      }),
    ]);
    const table = await signalctl(['room', room]);
    expect(table).toMatch(
      new RegExp(`${joined.self.id}\\s+Ada\\s+user-42\\s+hook:signal,broadcast,state\\s+${a.id}\\s+connected`),
    );
  });

  it('a denied join gets the code and reason the backend gave, and is not in the room', async () => {
    const room = newRoom('hook-deny');
    backend.answer = () => ({ body: { allow: false, reason: 'not a member of this team' } });
    const { reply } = await refusedJoin(a, room);
    expect(reply).toMatchObject({ type: 'error', code: 'forbidden', message: 'not a member of this team' });
    backend.answer = () => ({ body: { allow: false, code: 'unauthorized', reason: 'session expired' } });
    expect((await refusedJoin(a, room)).reply).toMatchObject({ code: 'unauthorized', message: 'session expired' });
    expect((await callApi(a, 'GET', `/v1/rooms/${room}/participants`)).body.participants ?? []).toEqual([]);
    expect(await metric(a, 'signaling_join_hook_requests_total{outcome="deny"}')).toBe(2);
  });

  it('grants apply: a participant the backend gave no signal grant cannot signal, but may broadcast', async () => {
    const room = newRoom('hook-grants');
    backend.answer = () => allow({ sub: 'viewer' });
    const peer = await clients.connect(b);
    const pj = await peer.join(room);
    backend.answer = () => allow({ sub: 'listener', grants: ['broadcast'] });
    const listener = await clients.connect(a);
    await listener.join(room);
    expect(await listener.request({ type: 'signal', room, to: pj.self.id, data: { sdp: 'x' } })).toMatchObject({
      type: 'error',
      code: 'forbidden',
    });
    expect(await listener.request({ type: 'state', room, version: 0, data: { a: 1 } })).toMatchObject({ code: 'forbidden' });
    expect(await listener.request({ type: 'broadcast', room, data: 'hello' })).toMatchObject({ type: 'ack' });
    await peer.waitForType('broadcast', (m) => m.data === 'hello');
    expect(peer.seen((m) => m.type === 'signal')).toEqual([]);
  });
});

describe('a backend that fails: joins are refused (fail closed) in bounded time', () => {
  it('one that does not answer within JOIN_HOOK_TIMEOUT_MS', async () => {
    backend.answer = () => ({ hang: true });
    const { reply, ms } = await refusedJoin(a, newRoom('hook-timeout'));
    expect(reply).toMatchObject({ type: 'error', code: 'unavailable' });
    expect(ms).toBeLessThan(TIMEOUT_MS + 1500);
    expect(await metric(a, 'signaling_join_hook_requests_total{outcome="timeout"}')).toBe(1);
    await expectNextJoinAllowed(a);
  });

  it('one that answers 5xx', async () => {
    backend.answer = () => ({ status: 503, body: { allow: true } });
    expect((await refusedJoin(a, newRoom('hook-5xx'))).reply).toMatchObject({ code: 'unavailable' });
    expect(await metric(a, 'signaling_join_hook_requests_total{outcome="error"}')).toBe(1);
    await expectNextJoinAllowed(a);
  });

  it('one that answers something that is not an answer, or one Postgres could not store', async () => {
    const unstorable = [
      '{"allow":true,"sub":"user\\u0000x"}',
      '{"allow":true,"name":"\\ud800"}',
      '{"allow":true,"meta":{"n":1e300}}',
      `{"allow":true,"meta":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}`,
    ];
    const raws = ['<html>oops</html>', '{"allow":"yes"}', '{"allow":true,"grants":["admin"]}', ...unstorable];
    for (const raw of raws) {
      backend.answer = () => ({ raw });
      expect((await refusedJoin(a, newRoom('hook-malformed'))).reply).toMatchObject({ code: 'unavailable' });
      // An answer in between keeps the breaker (BREAKER_FAILURES in a row) closed.
      await expectNextJoinAllowed(a);
    }
    expect(await metric(a, 'signaling_join_hook_requests_total{outcome="malformed"}')).toBe(raws.length);
  });

  it('one that is down: the breaker opens, joins are refused without asking, and it closes once the backend is back', async () => {
    await backend.stop();
    for (let i = 0; i < BREAKER_FAILURES; i++) {
      expect((await refusedJoin(a, newRoom('hook-down'))).reply).toMatchObject({ code: 'unavailable' });
    }
    expect(await metric(a, 'signaling_join_hook_breaker_state')).toBe(2);
    // Open: refused at once, nothing sent.
    const { reply, ms } = await refusedJoin(a, newRoom('hook-open'));
    expect(reply).toMatchObject({ code: 'unavailable' });
    expect(ms).toBeLessThan(200);
    expect(await metric(a, 'signaling_join_hook_rejected_total{reason="breaker-open"}')).toBeGreaterThanOrEqual(1);
    // The other node's breaker is its own.
    expect(await metric(b, 'signaling_join_hook_breaker_state')).toBe(0);

    await backend.restart();
    backend.answer = () => allow();
    const calls = backend.calls.length;
    const client = await clients.connect(a);
    const deadline = Date.now() + COOLDOWN_MS + 3000;
    let joined = await joinReply(client, newRoom('hook-back'));
    // No event says the cool-down is over: try until the trial request goes through.
    while (joined.type !== 'joined' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      joined = await joinReply(client, newRoom('hook-back'));
    }
    expect(joined.type).toBe('joined');
    expect(backend.calls.length).toBe(calls + 1);
    expect(await metric(a, 'signaling_join_hook_breaker_state')).toBe(0);
    await expectNextJoinAllowed(a);
  });
});

afterEach(async () => {
  // A failed breaker test must not leave the backend down for the tests after it.
  await backend.restart();
});

describe('resumes and re-checks', () => {
  it('a resume is not asked about when JOIN_HOOK_ON_RESUME is off: it keeps the grants it joined with, on another node', async () => {
    const room = newRoom('hook-resume');
    backend.answer = () => allow({ sub: 'walker', grants: ['broadcast'] });
    const first = await clients.connect(a);
    const joined = await first.join(room);
    first.drop();
    const calls = backend.calls.length;
    const again = await clients.connect(b);
    const resumed = await again.join(room, { resume: joined.resume });
    expect(resumed).toMatchObject({ resumed: true, self: { id: joined.self.id } });
    expect(backend.calls.length).toBe(calls);
    expect(await again.request({ type: 'state', room, version: 0, data: {} })).toMatchObject({ code: 'forbidden' });
    const { body } = await callApi(b, 'GET', `/v1/rooms/${room}/participants`);
    expect(body.participants[0]).toMatchObject({ identity: 'walker', source: 'hook', grants: ['broadcast'], node: b.id });
  });

  it('a resume token that does not work does not get past the hook: the join is asked about as a new one', async () => {
    const room = newRoom('hook-badresume');
    backend.answer = () => allow();
    const first = await clients.connect(a);
    const joined = await first.join(room);
    await first.request({ type: 'leave', room });
    backend.answer = (req) => ({ body: { allow: false, reason: `no ${req.type}` } });
    for (const resume of [joined.resume, 'not-a-resume-token']) {
      const again = await clients.connect(b);
      expect(await joinReply(again, room, { resume })).toMatchObject({ code: 'forbidden', message: 'no join' });
    }
  });

  it('a resume of a participant stored without its access (before migration 007) is asked about as a join, not given every grant', async () => {
    const room = newRoom('hook-premigration');
    backend.answer = () => allow({ sub: 'pre', grants: ['broadcast'] });
    const first = await clients.connect(a);
    const joined = await first.join(room);
    first.drop();
    const db = new pg.Client({ connectionString: shared.databaseUrl });
    await db.connect();
    try {
      await db.query('UPDATE participants SET access = NULL WHERE id = $1', [joined.self.id]);
    } finally {
      await db.end();
    }
    const calls = backend.calls.length;
    const again = await clients.connect(b);
    expect(await again.join(room, { resume: joined.resume })).toMatchObject({ resumed: true, self: { id: joined.self.id } });
    expect(backend.calls.slice(calls).map((c) => c.body)).toEqual([
      expect.objectContaining({ type: 'join', participant: joined.self.id }),
    ]);
    expect(await again.request({ type: 'state', room, version: 0, data: {} })).toMatchObject({ code: 'forbidden' });
  });

  it('a participant whose access was revoked is removed at its re-check, with the reason, and its peers see it leave', async () => {
    const room = newRoom('hook-recheck');
    let isRevoked = false;
    backend.answer = (req) => {
      // Only the member is re-checked; the peer joins for good.
      if (req.name !== 'member') return allow();
      if (req.type === 'recheck' && isRevoked) return { body: { allow: false, reason: 'subscription ended' } };
      return allow({ sub: 'member-1', recheckAfterSec: 1 });
    };
    const peer = await clients.connect(b);
    await peer.join(room, { name: 'peer' });
    const member = await clients.connect(a);
    const joined = await member.join(room, { name: 'member' });
    // The first re-check keeps it.
    const firstRecheck = await backend.untilCall((c) => c.body.type === 'recheck' && c.body.participant === joined.self.id);
    expect(firstRecheck).toMatchObject({ isVerified: true, body: { room, name: 'member' } });
    expect(member.seen((m) => m.type === 'kicked')).toEqual([]);
    isRevoked = true;
    expect(await member.waitForType('kicked', () => true, 5000)).toMatchObject({ room, reason: 'subscription ended' });
    await peer.waitForType('peer-left', (m) => m.peer.id === joined.self.id && m.reason === 'kicked');
    expect(await metric(a, 'signaling_join_hook_decisions_total{purpose="recheck",decision="removed"}')).toBe(1);
  });

  it('a re-check that names another identity removes the participant (a resume keeps who it is)', async () => {
    const room = newRoom('hook-recheck-sub');
    backend.answer = (req) => allow({ sub: req.type === 'recheck' ? 'someone-else' : 'member-2', recheckAfterSec: 1 });
    const member = await clients.connect(a);
    await member.join(room);
    expect(await member.waitForType('kicked', () => true, 5000)).toMatchObject({
      room,
      reason: 'the join hook named another identity',
    });
  });

  it('a participant kicked by an operator is no longer waiting for its re-check', async () => {
    const room = newRoom('hook-recheck-kick');
    backend.answer = () => allow({ sub: 'kicked-one', recheckAfterSec: 3600 });
    const member = await clients.connect(a);
    const joined = await member.join(room);
    const pending = await metric(a, 'signaling_join_hook_rechecks_pending');
    expect(pending).toBeGreaterThanOrEqual(1);
    await callApi(a, 'DELETE', `/v1/rooms/${room}/participants/${joined.self.id}`);
    await member.waitForType('kicked');
    expect(await metric(a, 'signaling_join_hook_rechecks_pending')).toBe(pending - 1);
  });
});

describe('a slow backend under a storm of joins', () => {
  it('holds at most JOIN_HOOK_MAX_CONCURRENCY requests out, queues a few, and answers every join in bounded time', async () => {
    const slow = await JoinHookBackend.start();
    slow.answer = () => ({ ...allow(), delayMs: 400 });
    const node = await startNode({
      ...shared,
      env: {
        JOIN_HOOK_URL: slow.url,
        JOIN_HOOK_SECRET: HOOK_SECRET,
        JOIN_HOOK_TIMEOUT_MS: '1000',
        JOIN_HOOK_MAX_CONCURRENCY: '2',
        JOIN_HOOK_MAX_QUEUED: '4',
      },
    });
    try {
      const storm = await Promise.all(Array.from({ length: 30 }, () => clients.connect(node)));
      const started = Date.now();
      const replies = await Promise.all(storm.map((c) => joinReply(c, newRoom('hook-storm'))));
      const elapsed = Date.now() - started;
      const joined = replies.filter((r) => r.type === 'joined').length;
      const refused = replies.filter((r) => r.type === 'error' && r.code === 'unavailable').length;
      expect(joined + refused).toBe(30);
      // Two in flight and four waiting: six get in, the rest are told at once.
      expect(joined).toBeGreaterThanOrEqual(2);
      expect(refused).toBeGreaterThanOrEqual(20);
      expect(slow.maxInFlight).toBeLessThanOrEqual(2);
      expect(slow.calls.length).toBe(joined);
      expect(elapsed).toBeLessThan(3000);
      expect(await metric(node, 'signaling_join_hook_rejected_total{reason="queue-full"}')).toBe(refused);
    } finally {
      await node.kill();
      await slow.stop();
    }
  });
});

describe('with JOIN_HOOK_ON_RESUME, JOIN_HOOK_FAIL_OPEN and tokens', () => {
  let c: RunningNode;
  let tokened: JoinHookBackend;

  beforeAll(async () => {
    tokened = await JoinHookBackend.start();
    c = await startNode({
      ...shared,
      env: {
        JOIN_HOOK_URL: tokened.url,
        JOIN_HOOK_SECRET: HOOK_SECRET,
        JOIN_HOOK_TIMEOUT_MS: String(TIMEOUT_MS),
        JOIN_HOOK_ON_RESUME: 'true',
        JOIN_HOOK_FAIL_OPEN: 'true',
        AUTH_JWT_SECRET: JWT_SECRET,
        ADMIN_API_KEYS,
      },
    });
  });

  afterAll(async () => {
    await tokened.stop();
  });

  it("the hook is told the token's claims and narrows its grants; it cannot widen them or change who it is", async () => {
    const room = newRoom('hook-token');
    const jwt = await token('tess', ['signal', 'broadcast']);
    tokened.answer = () => allow({ grants: ['broadcast', 'state'] });
    const client = await clients.connect(c);
    const joined = await client.join(room, { token: jwt });
    const call = tokened.calls.at(-1)!;
    expect(call.body).toMatchObject({ token: jwt, claims: { sub: 'tess', room: '*', grants: ['signal', 'broadcast'] } });
    expect(await client.request({ type: 'state', room, version: 0, data: {} })).toMatchObject({ code: 'forbidden' });
    const { body } = await callApi(c, 'GET', `/v1/rooms/${room}/participants`);
    expect(body.participants.find((p: { id: string }) => p.id === joined.self.id)).toMatchObject({
      identity: 'tess',
      source: 'hook',
      grants: ['broadcast'],
    });

    tokened.answer = () => allow({ sub: 'someone-else' });
    const other = await clients.connect(c);
    expect(await joinReply(other, room, { token: jwt })).toMatchObject({ code: 'forbidden' });
    // Without a token the hook is not even asked.
    const calls = tokened.calls.length;
    expect(await joinReply(await clients.connect(c), room)).toMatchObject({ code: 'unauthorized' });
    expect(tokened.calls.length).toBe(calls);
  });

  it('a resume is asked about when JOIN_HOOK_ON_RESUME is on, and refused when the backend says no', async () => {
    const room = newRoom('hook-onresume');
    const jwt = await token('rhea', ['signal', 'broadcast', 'state']);
    tokened.answer = () => allow();
    const first = await clients.connect(c);
    const joined = await first.join(room, { token: jwt });
    first.drop();
    const again = await clients.connect(c);
    const resumed = await again.join(room, { token: jwt, resume: joined.resume });
    expect(resumed).toMatchObject({ resumed: true, self: { id: joined.self.id } });
    expect(tokened.calls.at(-1)!.body).toMatchObject({ type: 'resume', room, participant: joined.self.id });

    again.drop();
    tokened.answer = (req) => (req.type === 'resume' ? { body: { allow: false, reason: 'banned since' } } : allow());
    const third = await clients.connect(c);
    expect(await joinReply(third, room, { token: jwt, resume: resumed.resume })).toMatchObject({
      code: 'forbidden',
      message: 'banned since',
    });
  });

  it("a re-check that names another identity than the token's removes the participant and the node keeps serving", async () => {
    const room = newRoom('hook-recheck-token');
    const jwt = await token('tom', ['signal', 'broadcast']);
    tokened.answer = (req) => allow(req.type === 'recheck' ? { sub: 'mallory' } : { recheckAfterSec: 1 });
    const member = await clients.connect(c);
    await member.join(room, { token: jwt });
    expect(await member.waitForType('kicked', () => true, 5000)).toMatchObject({
      room,
      reason: 'the join hook named another identity',
    });
    tokened.answer = () => allow();
    await (await clients.connect(c)).join(newRoom('hook-after-recheck'), { token: jwt });
  });

  it('fail-open: a join the hook cannot decide is admitted as the token alone says', async () => {
    const room = newRoom('hook-failopen');
    tokened.answer = () => ({ status: 500 });
    const client = await clients.connect(c);
    const joined = await client.join(room, { token: await token('olga', ['signal']) });
    const { body } = await callApi(c, 'GET', `/v1/rooms/${room}/participants`);
    expect(body.participants.find((p: { id: string }) => p.id === joined.self.id)).toMatchObject({
      identity: 'olga',
      source: 'token',
      grants: ['signal'],
    });
    expect(await metric(c, 'signaling_join_hook_decisions_total{purpose="join",decision="failed-open"}')).toBe(1);
  });

  it('fail-open: a resume the hook cannot decide keeps the grants the hook narrowed, not the whole token', async () => {
    const room = newRoom('hook-failopen-resume');
    const jwt = await token('una', ['signal', 'broadcast', 'state']);
    tokened.answer = () => allow({ grants: ['broadcast'] });
    const first = await clients.connect(c);
    const joined = await first.join(room, { token: jwt });
    first.drop();
    tokened.answer = () => ({ status: 500 });
    let resume = joined.resume;
    for (let i = 0; i < 2; i++) {
      // Twice: the first resume must not have stored the token's grants for the next.
      const again = await clients.connect(c);
      const resumed = await again.join(room, { token: jwt, resume });
      resume = resumed.resume;
      expect(resumed).toMatchObject({ resumed: true, self: { id: joined.self.id } });
      expect(await again.request({ type: 'state', room, version: 0, data: {} })).toMatchObject({ code: 'forbidden' });
      const { body } = await callApi(c, 'GET', `/v1/rooms/${room}/participants`);
      expect(body.participants).toEqual([
        expect.objectContaining({ id: joined.self.id, identity: 'una', source: 'hook', grants: ['broadcast'] }),
      ]);
      again.drop();
    }
  });

  it('fail-open without tokens: a resume the hook cannot decide stays the participant it was, with its grants', async () => {
    const node = await startNode({
      ...shared,
      env: {
        JOIN_HOOK_URL: backend.url,
        JOIN_HOOK_SECRET: HOOK_SECRET,
        JOIN_HOOK_TIMEOUT_MS: String(TIMEOUT_MS),
        JOIN_HOOK_ON_RESUME: 'true',
        JOIN_HOOK_FAIL_OPEN: 'true',
        ADMIN_API_KEYS,
      },
    });
    try {
      const room = newRoom('hook-failopen-anon-resume');
      backend.answer = () => allow({ sub: 'nia', grants: ['broadcast'] });
      const first = await clients.connect(node);
      const joined = await first.join(room);
      first.drop();
      backend.answer = () => ({ status: 500 });
      const again = await clients.connect(node);
      expect(await again.join(room, { resume: joined.resume })).toMatchObject({ resumed: true, self: { id: joined.self.id } });
      const { body } = await callApi(node, 'GET', `/v1/rooms/${room}/participants`);
      expect(body.participants).toEqual([
        expect.objectContaining({ id: joined.self.id, identity: 'nia', source: 'hook', grants: ['broadcast'] }),
      ]);
    } finally {
      await node.kill();
    }
  });

  it('fail-open without tokens: a join is admitted anonymously while the backend is down', async () => {
    const node = await startNode({
      ...shared,
      env: {
        JOIN_HOOK_URL: `http://127.0.0.1:${await freePort()}/nobody-here`,
        JOIN_HOOK_SECRET: HOOK_SECRET,
        JOIN_HOOK_FAIL_OPEN: 'true',
        ADMIN_API_KEYS,
      },
    });
    try {
      const room = newRoom('hook-failopen-anon');
      const joined = await (await clients.connect(node)).join(room);
      const { body } = await callApi(node, 'GET', `/v1/rooms/${room}/participants`);
      expect(body.participants).toEqual([expect.objectContaining({ id: joined.self.id, identity: null, source: 'anonymous' })]);
      expect(await metric(node, 'signaling_join_hook_requests_total{outcome="error"}')).toBe(1);
    } finally {
      await node.kill();
    }
  });
});

/** The backend answers again: the next join on `node` goes through. */
async function expectNextJoinAllowed(node: RunningNode) {
  backend.answer = () => allow();
  const client = await clients.connect(node);
  await client.join(newRoom('hook-next'));
}

function token(sub: string, grants: string[]) {
  return new SignJWT({ room: '*', grants })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

function signalctl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      SIGNALCTL_URL: a.httpUrl,
      SIGNALCTL_KEY: WRITE_KEY,
    };
    execFile(process.execPath, [CLI, ...args], { env, timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}
