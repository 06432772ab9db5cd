// TURN credentials in the TURN REST API scheme: the format against vectors computed outside Node
// (openssl), their expiry, a secret rotation as a TURN server sees it, and that nothing secret
// reaches the log.
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { IceServerIssuer } from '../../src/ice/ice-servers.js';
import { mintTurnCredential } from '../../src/ice/turn-credentials.js';

const SECRET = 'north-wind-shared-secret';
const PARTICIPANT = 'xW9CBfAidFDjFh12';
const URLS = ['stun:stun.example.org:3478', 'turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349'];

/** What a TURN server with `use-auth-secret` checks: not expired, and the HMAC under one of its secrets. */
function turnServerAccepts(secrets: string[], username: string, credential: string, nowSeconds: number): boolean {
  const expiry = Number(username.split(':')[0]);
  if (!(expiry > nowSeconds)) return false;
  const given = Buffer.from(credential, 'base64');
  return secrets.some((s) => {
    const expected = createHmac('sha1', s).update(username).digest();
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
}

describe('TURN credentials', () => {
  it('match the TURN REST API format (vectors from `openssl dgst -sha1 -hmac`)', () => {
    expect(mintTurnCredential(SECRET, PARTICIPANT, 1_700_000_000)).toEqual({
      username: '1700000000:xW9CBfAidFDjFh12',
      credential: 'mgCelY50NcZv5Dxdaksy0KM4F3o=',
    });
    expect(mintTurnCredential(SECRET, PARTICIPANT, 1_700_003_600.9)).toEqual({
      username: '1700003600:xW9CBfAidFDjFh12',
      credential: 'SLy2WtjtR7YzNt304g9j/x1Wdkc=',
    });
  });

  it('refuses an identity that would make the username ambiguous', () => {
    expect(() => mintTurnCredential(SECRET, 'a:b', 1_700_000_000)).toThrow(RangeError);
  });

  it('are bound to the participant, expire TURN_TTL after issue, and say how long they last', () => {
    let now = 1_700_000_000_250;
    const issuer = new IceServerIssuer({ urls: URLS, turnSecret: SECRET, ttlSeconds: 3600, now: () => now });
    const issued = issuer.issue(PARTICIPANT);
    expect(issued.iceServers).toEqual([
      { urls: ['stun:stun.example.org:3478'] },
      {
        urls: ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349'],
        username: '1700003600:xW9CBfAidFDjFh12',
        credential: 'SLy2WtjtR7YzNt304g9j/x1Wdkc=',
      },
    ]);
    expect(issued.ttlMs).toBe(3_599_750);
    const turn = issued.iceServers[1]!;
    expect(turnServerAccepts([SECRET], turn.username!, turn.credential!, now / 1000)).toBe(true);
    expect(turnServerAccepts([SECRET], turn.username!, turn.credential!, 1_700_003_600)).toBe(false); // expired
    // Another participant's username with this credential is refused: it is bound to one identity.
    expect(turnServerAccepts([SECRET], '1700003600:someone-else', turn.credential!, now / 1000)).toBe(false);
    // A later issue is a fresh credential with a later expiry.
    now += 60_000;
    expect(issuer.issue(PARTICIPANT).iceServers[1]!.username).toBe('1700003660:xW9CBfAidFDjFh12');
  });

  it('hand out STUN alone without credentials', () => {
    const issuer = new IceServerIssuer({ urls: ['stun:stun.example.org'], ttlSeconds: 3600 });
    // Nothing expires, so there is no lifetime to renew by.
    expect(issuer.issue(PARTICIPANT)).toEqual({ iceServers: [{ urls: ['stun:stun.example.org'] }] });
  });

  it('survive a secret rotation: a TURN server holding old and new accepts nodes on either', () => {
    const now = 1_700_000_000;
    const oldNode = new IceServerIssuer({
      urls: URLS,
      turnSecret: 'old-secret-0123456789',
      ttlSeconds: 3600,
      now: () => now * 1000,
    });
    const newNode = new IceServerIssuer({
      urls: URLS,
      turnSecret: 'new-secret-0123456789',
      ttlSeconds: 3600,
      now: () => now * 1000,
    });
    const fromOld = oldNode.issue(PARTICIPANT).iceServers[1]!;
    const fromNew = newNode.issue(PARTICIPANT).iceServers[1]!;
    const during = ['old-secret-0123456789', 'new-secret-0123456789'];
    expect(turnServerAccepts(during, fromOld.username!, fromOld.credential!, now)).toBe(true);
    expect(turnServerAccepts(during, fromNew.username!, fromNew.credential!, now)).toBe(true);
    // Once the old secret is dropped (after every node switched and TURN_TTL passed), only new ones pass.
    expect(turnServerAccepts(['new-secret-0123456789'], fromOld.username!, fromOld.credential!, now)).toBe(false);
    expect(turnServerAccepts(['new-secret-0123456789'], fromNew.username!, fromNew.credential!, now)).toBe(true);
  });
});

describe('ICE configuration', () => {
  it('defaults to no ICE servers and a TURN_TTL of one hour', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ ICE_SERVERS: [], TURN_TTL: 3600 });
    expect(config.TURN_SECRET).toBeUndefined();
  });

  it('reads comma-separated URLs and the secret', () => {
    const config = loadConfig({ ICE_SERVERS: ` ${URLS.join(' , ')} `, TURN_SECRET: SECRET, TURN_TTL: '600' });
    expect(config.ICE_SERVERS).toEqual(URLS);
    expect(config.TURN_TTL).toBe(600);
  });

  it('stops on a bad URL, a TURN URL without secret, a secret without TURN URL, a short secret or TTL', () => {
    expect(() => loadConfig({ ICE_SERVERS: 'http://turn.example.org' })).toThrow(/ICE_SERVERS: not a stun/);
    expect(() => loadConfig({ ICE_SERVERS: 'turn:turn.example.org' })).toThrow(/TURN_SECRET: required/);
    expect(() => loadConfig({ ICE_SERVERS: 'stun:stun.example.org', TURN_SECRET: SECRET })).toThrow(
      /ICE_SERVERS: TURN_SECRET is set/,
    );
    expect(() => loadConfig({ ICE_SERVERS: 'turn:turn.example.org', TURN_SECRET: 'short' })).toThrow(/TURN_SECRET: at least 16/);
    expect(() => loadConfig({ TURN_TTL: '10' })).toThrow(/TURN_TTL/);
  });

  it('never echoes the secret in a configuration error', () => {
    const secret = 'a-secret-that-must-not-show';
    expect(() => loadConfig({ TURN_SECRET: secret, TURN_TTL: 'x' })).toThrow(/TURN_TTL/);
    try {
      loadConfig({ TURN_SECRET: secret, TURN_TTL: 'x' });
    } catch (err) {
      expect(String(err)).not.toContain(secret);
    }
  });
});

it('the logger redacts secrets and TURN credentials wherever a log call puts them', async () => {
  const logModule = fileURLToPath(new URL('../../src/log.ts', import.meta.url));
  const issued = new IceServerIssuer({ urls: URLS, turnSecret: SECRET, ttlSeconds: 3600 }).issue(PARTICIPANT);
  const turn = issued.iceServers[1]!;
  const calls = [
    `log.info({ iceServers: ${JSON.stringify(issued.iceServers)} }, 'issued')`,
    `log.info({ reply: { iceServers: ${JSON.stringify(issued.iceServers)} } }, 'nested')`,
    `log.info({ credential: ${JSON.stringify(turn.credential)} }, 'credential')`,
    `log.info({ config: { TURN_SECRET: ${JSON.stringify(SECRET)} } }, 'config')`,
    `log.info({ TURN_SECRET: ${JSON.stringify(SECRET)}, secret: ${JSON.stringify(SECRET)} }, 'top level')`,
  ];
  const script = `const { createLogger } = await import(${JSON.stringify(logModule)}); const log = createLogger('trace', 'n1'); ${calls.join(';')}; process.exit(0);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  await new Promise((resolve) => child.once('close', resolve));
  const lines = out.trim().split('\n');
  expect(lines).toHaveLength(calls.length); // every call logged a line...
  expect(out).not.toContain(SECRET); // ...with neither the secret
  expect(out).not.toContain(turn.credential!); // nor a credential
  expect(out).toContain('[redacted]');
});
