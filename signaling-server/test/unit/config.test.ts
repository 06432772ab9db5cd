import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

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

  it('treats empty strings as unset for the backing services', () => {
    expect(loadConfig({ DATABASE_URL: '', REDIS_URL: ' ' })).toMatchObject({ DATABASE_URL: undefined, REDIS_URL: undefined });
  });
});
