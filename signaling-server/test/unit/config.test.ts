import { describe, expect, it } from 'vitest';
import { loadConfig, timerWarnings } from '../../src/config.js';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      PORT: 8080,
      HOST: '0.0.0.0',
      DATA_DIR: './data',
      LOG_LEVEL: 'info',
      RESUME_GRACE_MS: 10_000,
      NODE_HEARTBEAT_MS: 5_000,
      MAX_MESSAGE_BYTES: 65_536,
    });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.DB_SYNCHRONOUS_COMMIT).toBeUndefined();
    expect(config.YWEBRTC_PATH).toBeUndefined();
    expect(config.YWEBRTC_MAX_TOPICS).toBe(64);
    expect(config.NODE_ID).toMatch(/^.+-[0-9a-f]{6}$/);
  });

  it('stops with a message naming each bad variable', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ RESUME_GRACE_MS: '-1' })).toThrow(/RESUME_GRACE_MS/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x/y' })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ REDIS_URL: 'not a url' })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
    expect(() => loadConfig({ NODE_ID: 'has space' })).toThrow(/NODE_ID/);
    expect(() => loadConfig({ DB_SYNCHRONOUS_COMMIT: 'sometimes' })).toThrow(/DB_SYNCHRONOUS_COMMIT/);
    expect(() => loadConfig({ YWEBRTC_PATH: 'y-webrtc' })).toThrow(/YWEBRTC_PATH/);
    expect(() => loadConfig({ YWEBRTC_PATH: '/ws' })).toThrow(/YWEBRTC_PATH/);
    expect(() => loadConfig({ YWEBRTC_PATH: '/v1/signal' })).toThrow(/YWEBRTC_PATH/);
  });

  it('serves y-webrtc signaling at a path of its own when one is set', () => {
    expect(loadConfig({ YWEBRTC_PATH: '/y-webrtc' }).YWEBRTC_PATH).toBe('/y-webrtc');
    expect(loadConfig({ YWEBRTC_PATH: '/apps/yjs' }).YWEBRTC_PATH).toBe('/apps/yjs');
  });

  it('reads every switch as on/off, true/false, yes/no or 1/0, in any case, and refuses anything else', () => {
    for (const on of ['on', 'ON', 'true', 'True', 'yes', '1']) {
      expect(loadConfig({ ADMIN_API_JWT: on, ALLOW_UWS_FALLBACK: on })).toMatchObject({
        ADMIN_API_JWT: true,
        ALLOW_UWS_FALLBACK: true,
      });
    }
    for (const off of ['off', 'OFF', 'false', 'no', '0', '']) {
      expect(loadConfig({ ADMIN_API_JWT: off, ALLOW_UWS_FALLBACK: off })).toMatchObject({
        ADMIN_API_JWT: false,
        ALLOW_UWS_FALLBACK: false,
      });
    }
    expect(() => loadConfig({ ADMIN_API_JWT: 'enabled' })).toThrow(/ADMIN_API_JWT: not a switch: write on or off/);
  });

  it('refuses an ALLOWED_ORIGINS entry no browser would send, saying what to write', () => {
    expect(loadConfig({ ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:8080' }).ALLOWED_ORIGINS).toEqual([
      'https://app.example.com',
      'http://localhost:8080',
    ]);
    expect(loadConfig({ ALLOWED_ORIGINS: 'capacitor://localhost' }).ALLOWED_ORIGINS).toEqual(['capacitor://localhost']);
    expect(() => loadConfig({ ALLOWED_ORIGINS: 'https://ok.example,app.example.com' })).toThrow(
      'invalid configuration: ALLOWED_ORIGINS: app.example.com has no scheme: write it as https://app.example.com',
    );
    expect(() => loadConfig({ ALLOWED_ORIGINS: 'localhost:8080' })).toThrow(/ALLOWED_ORIGINS: localhost:8080 has no scheme/);
    expect(() => loadConfig({ ALLOWED_ORIGINS: 'https://app.example.com/' })).toThrow(
      'ALLOWED_ORIGINS: https://app.example.com/ is not an origin as browsers send it: write https://app.example.com',
    );
    expect(() => loadConfig({ ALLOWED_ORIGINS: 'https://App.Example.com:443' })).toThrow(/write https:\/\/app\.example\.com$/);
  });

  it('refuses an HS256 secret shorter than 32 bytes', () => {
    const long = 'x'.repeat(32);
    expect(loadConfig({ AUTH_JWT_SECRET: long, AUTH_JWT_SECRET_PREVIOUS: long }).AUTH_JWT_SECRET).toBe(long);
    expect(() => loadConfig({ AUTH_JWT_SECRET: 'short' })).toThrow(
      /AUTH_JWT_SECRET: shorter than 32 bytes, too short for HS256: make one with openssl rand -base64 32/,
    );
    expect(() => loadConfig({ AUTH_JWT_SECRET: long, AUTH_JWT_SECRET_PREVIOUS: 'x'.repeat(31) })).toThrow(
      /AUTH_JWT_SECRET_PREVIOUS: shorter than 32 bytes/,
    );
  });

  it('reads TRUSTED_PROXIES as a list of CIDRs and refuses one that is not', () => {
    expect(loadConfig({}).TRUSTED_PROXIES).toEqual([]);
    expect(loadConfig({ TRUSTED_PROXIES: ' 10.0.0.0/8, fd00::/8,192.0.2.1 ' }).TRUSTED_PROXIES).toEqual([
      '10.0.0.0/8',
      'fd00::/8',
      '192.0.2.1',
    ]);
    expect(() => loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8,lb.internal' })).toThrow(/TRUSTED_PROXIES.*lb\.internal/);
    expect(() => loadConfig({ TRUSTED_PROXIES: '10.0.0.0/40' })).toThrow(/TRUSTED_PROXIES/);
    expect(() => loadConfig({ FORWARDED_HEADER: 'x-real-ip' })).toThrow(/FORWARDED_HEADER/);
  });

  it('reads REDIS_CLUSTER_NODES as host:port seeds, never together with REDIS_URL', () => {
    expect(loadConfig({}).REDIS_CLUSTER_NODES).toBeUndefined();
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'redis-0:6379, 10.0.0.2:7000,[fd00::1]:7001' })).toMatchObject({
      REDIS_CLUSTER_NODES: ['redis-0:6379', '10.0.0.2:7000', 'fd00::1:7001'],
      REDIS_CLUSTER_WAIT_REPLICAS: 1,
      REDIS_CLUSTER_WAIT_TIMEOUT_MS: 100,
    });
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis-0' })).toThrow(/REDIS_CLUSTER_NODES.*redis-0/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: ',' })).toThrow(/REDIS_CLUSTER_NODES: names no node/);
    expect(() => loadConfig({ REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'r:6379' })).toThrow(
      /REDIS_CLUSTER_NODES: set either REDIS_URL .* or REDIS_CLUSTER_NODES .*, not both/,
    );
    expect(() => loadConfig({ REDIS_CLUSTER_WAIT_TIMEOUT_MS: '3000' })).toThrow(
      /REDIS_CLUSTER_WAIT_TIMEOUT_MS \(3000\) must be less than REDIS_TIMEOUT_MS/,
    );
  });

  it('treats empty strings as unset for the backing services', () => {
    expect(loadConfig({ DATABASE_URL: '', REDIS_URL: ' ', REDIS_CLUSTER_NODES: '' })).toMatchObject({
      DATABASE_URL: undefined,
      REDIS_URL: undefined,
      REDIS_CLUSTER_NODES: undefined,
    });
  });

  it('derives the Postgres session timeouts from DB_TIMEOUT_MS and REDIS_TIMEOUT_MS unless set', () => {
    expect(loadConfig({ DB_TIMEOUT_MS: '4000', REDIS_TIMEOUT_MS: '2000' })).toMatchObject({
      DB_LOCK_TIMEOUT_MS: 2000,
      DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: 6000,
    });
    expect(loadConfig({ DB_LOCK_TIMEOUT_MS: '300', DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '9000' })).toMatchObject({
      DB_LOCK_TIMEOUT_MS: 300,
      DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: 9000,
    });
  });

  it('refuses timers that cannot work together, naming the variable', () => {
    expect(() => loadConfig({ REDIS_TIMEOUT_MS: '3000', DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '3000' })).toThrow(
      /DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: must exceed REDIS_TIMEOUT_MS/,
    );
    expect(() => loadConfig({ RESUME_GRACE_MS: '1000', RECONNECT_JITTER_MS: '1000' })).toThrow(
      /RESUME_GRACE_MS: must exceed RECONNECT_JITTER_MS/,
    );
    // No resume at all is a choice, not a conflict.
    expect(loadConfig({ RESUME_GRACE_MS: '0' }).RESUME_GRACE_MS).toBe(0);
  });

  it('warns about a drain too short for its clients to come back, and about heartbeats that one slow query can miss', () => {
    expect(timerWarnings(loadConfig({}))).toEqual([]);
    const short = timerWarnings(loadConfig({ DRAIN_TIMEOUT_MS: '2000', DRAIN_SPREAD_MS: '1000', RECONNECT_JITTER_MS: '1000' }));
    expect(short).toEqual([expect.stringMatching(/^DRAIN_TIMEOUT_MS \(2000\) leaves 1500 ms for clients/)]);
    const slow = timerWarnings(loadConfig({ DB_TIMEOUT_MS: '2000', NODE_HEARTBEAT_MS: '1000' }));
    expect(slow).toEqual([expect.stringMatching(/^DB_TIMEOUT_MS \(2000\) is at least two NODE_HEARTBEAT_MS periods/)]);
  });
  it('leaves the join hook off by default and needs its secret with its URL', () => {
    const config = loadConfig({});
    expect(config.JOIN_HOOK_URL).toBeUndefined();
    expect(config).toMatchObject({
      JOIN_HOOK_TIMEOUT_MS: 2000,
      JOIN_HOOK_ON_RESUME: false,
      JOIN_HOOK_FAIL_OPEN: false,
      JOIN_HOOK_HEADERS: [],
      JOIN_HOOK_MAX_CONCURRENCY: 32,
      JOIN_HOOK_MAX_QUEUED: 256,
      JOIN_HOOK_BREAKER_FAILURES: 5,
      JOIN_HOOK_BREAKER_COOLDOWN_MS: 5000,
    });
    expect(() => loadConfig({ JOIN_HOOK_URL: 'https://app.example/hook' })).toThrow(/JOIN_HOOK_SECRET/);
    expect(() => loadConfig({ JOIN_HOOK_URL: 'https://app.example/hook', JOIN_HOOK_SECRET: 'hunter2' })).toThrow(
      /JOIN_HOOK_SECRET must be whsec_/,
    );
    const secret = `whsec_${Buffer.alloc(24, 1).toString('base64')}`;
    expect(loadConfig({ JOIN_HOOK_URL: 'https://app.example/hook', JOIN_HOOK_SECRET: secret }).JOIN_HOOK_URL).toBe(
      'https://app.example/hook',
    );
    expect(() => loadConfig({ JOIN_HOOK_URL: 'ftp://app.example/hook' })).toThrow(/JOIN_HOOK_URL/);
    expect(loadConfig({ JOIN_HOOK_HEADERS: ' X-Tenant ,user-agent' }).JOIN_HOOK_HEADERS).toEqual(['x-tenant', 'user-agent']);
    expect(() => loadConfig({ JOIN_HOOK_HEADERS: 'bad header' })).toThrow(/JOIN_HOOK_HEADERS/);
  });
});
