import { describe, expect, it } from 'vitest';
import {
  ClientAddressResolver,
  parseAddress,
  parseCidr,
  type ConnectionOrigin,
  type ForwardedHeader,
} from '../../src/limits/client-address.js';

const origin = (peer: string, extra: Partial<ConnectionOrigin> = {}): ConnectionOrigin => ({
  peer,
  proxied: '',
  forwardedFor: [],
  ...extra,
});

const behind = (trustedProxies: string[], ipv6PrefixLength = 64, forwardedHeader: ForwardedHeader = 'x-forwarded-for') =>
  new ClientAddressResolver({ trustedProxies, ipv6PrefixLength, forwardedHeader });

describe('parseAddress', () => {
  it('reads IPv4, compressed and uncompressed IPv6, and IPv4-mapped IPv6 as the same IPv4', () => {
    expect(parseAddress('10.1.2.3')).toEqual(parseAddress('::ffff:10.1.2.3'));
    expect(parseAddress('::ffff:a01:203')).toEqual(parseAddress('10.1.2.3'));
    expect(parseAddress('2001:db8::1')).toEqual(parseAddress('2001:0db8:0000:0000:0000:0000:0000:0001'));
    expect(parseAddress('::1')).toEqual(Uint8Array.from([...new Array(15).fill(0), 1]));
    for (const bad of ['', 'unknown', '_hidden', '1.2.3', '1.2.3.256', 'g::1', '1.2.3.4:80'])
      expect(parseAddress(bad)).toBeNull();
  });

  it('refuses CIDRs with bad prefixes', () => {
    expect(() => parseCidr('10.0.0.0/33')).toThrow();
    expect(() => parseCidr('10.0.0.0/x')).toThrow();
    expect(() => parseCidr('fd00::/129')).toThrow();
    expect(() => parseCidr('proxy.example')).toThrow();
    expect(parseCidr('10.0.0.0/8').prefixBits).toBe(104);
  });
});

describe('ClientAddressResolver', () => {
  it('uses the TCP peer and ignores every header when no proxy is trusted', () => {
    const r = behind([]);
    const spoofed = origin('203.0.113.9', { proxied: '1.1.1.1', forwardedFor: ['1.1.1.1'] });
    expect(r.resolve(spoofed)).toBe('203.0.113.9');
    expect(r.forwardedHeader).toBeNull();
  });

  it('ignores headers from a peer outside TRUSTED_PROXIES', () => {
    const r = behind(['10.0.0.0/8']);
    expect(r.resolve(origin('203.0.113.9', { forwardedFor: ['1.1.1.1'], proxied: '1.1.1.1' }))).toBe('203.0.113.9');
  });

  it('takes the right-most untrusted X-Forwarded-For hop, across several header lines', () => {
    const r = behind(['10.0.0.0/8', '192.168.1.1']);
    // The client sent its own header first; the proxies appended theirs.
    const o = origin('10.0.0.5', { forwardedFor: ['6.6.6.6, 7.7.7.7', '198.51.100.4, 192.168.1.1'] });
    expect(r.resolve(o)).toBe('198.51.100.4');
    expect(r.resolve(origin('10.0.0.5', { forwardedFor: ['6.6.6.6, 10.0.0.9'] }))).toBe('6.6.6.6');
  });

  it('stops at the last trusted proxy when a hop is obfuscated or missing', () => {
    const r = behind(['10.0.0.0/8']);
    expect(r.resolve(origin('10.0.0.5', { forwardedFor: ['unknown'] }))).toBe('10.0.0.5');
    expect(r.resolve(origin('10.0.0.5'))).toBe('10.0.0.5');
  });

  it('reads Forwarded for= with quotes, brackets and ports when that is the configured header', () => {
    const r = behind(['10.0.0.0/8'], 64, 'forwarded');
    expect(r.forwardedHeader).toBe('forwarded');
    const o = origin('10.0.0.5', { forwardedFor: ['for=6.6.6.6;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.5'] });
    expect(r.resolve(o)).toBe('2001:db8:cafe:0:0:0:0:17');
    expect(r.resolve(origin('10.0.0.5', { forwardedFor: ['For="198.51.100.7:1234"'] }))).toBe('198.51.100.7');
  });

  it('reads no header at all with FORWARDED_HEADER=none, only the PROXY protocol', () => {
    const r = behind(['10.0.0.0/8'], 64, 'none');
    expect(r.forwardedHeader).toBeNull();
    expect(r.resolve(origin('10.0.0.5', { forwardedFor: ['6.6.6.6'] }))).toBe('10.0.0.5');
    expect(r.resolve(origin('10.0.0.5', { proxied: '198.51.100.4' }))).toBe('198.51.100.4');
  });

  it('believes a PROXY protocol source only from a trusted peer, then walks the headers from there', () => {
    const r = behind(['127.0.0.1']);
    expect(r.resolve(origin('127.0.0.1', { proxied: '198.51.100.4' }))).toBe('198.51.100.4');
    expect(r.resolve(origin('127.0.0.2', { proxied: '198.51.100.4' }))).toBe('127.0.0.2');
    // The proxied client is not a proxy: its own X-Forwarded-For is not believed.
    expect(r.resolve(origin('127.0.0.1', { proxied: '198.51.100.4', forwardedFor: ['1.1.1.1'] }))).toBe('198.51.100.4');
  });

  it('groups IPv6 clients by the configured prefix and IPv4 clients by address', () => {
    const r = behind([], 64);
    expect(r.limitKey('2001:db8:1:2:aaaa::1')).toBe(r.limitKey('2001:db8:1:2:ffff:ffff:ffff:ffff'));
    expect(r.limitKey('2001:db8:1:2::1')).toBe('2001:db8:1:2:0:0:0:0/64');
    expect(r.limitKey('2001:db8:1:3::1')).not.toBe(r.limitKey('2001:db8:1:2::1'));
    expect(r.limitKey('198.51.100.4')).toBe('198.51.100.4');
    expect(behind([], 128).limitKey('2001:db8::1')).toBe('2001:db8::1');
    expect(behind([], 56).limitKey('2001:db8:1:2ff::1')).toBe('2001:db8:1:200:0:0:0:0/56');
  });
});
