// Which client a connection is, for per-address limits: the TCP peer, unless that peer is one of
// TRUSTED_PROXIES, in which case what the proxy says (a PROXY protocol v2 header, or the
// right-most untrusted X-Forwarded-For / Forwarded entry). IPv6 addresses are grouped by prefix,
// since one host usually holds a whole /64. Headers from an untrusted peer are never read.
import { isIPv4, isIPv6 } from 'node:net';

/** 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one comparison covers both. */
type Address = Uint8Array;

interface Cidr {
  bytes: Address;
  prefixBits: number;
}

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** Parses an IPv4 or IPv6 address (also uWS's uncompressed IPv6 text); null when it is neither. */
export function parseAddress(text: string): Address | null {
  const t = text.trim();
  if (isIPv4(t)) return Uint8Array.from([...V4_MAPPED_PREFIX, ...t.split('.').map(Number)]);
  if (!isIPv6(t)) return null;
  // An embedded dotted quad (::ffff:1.2.3.4) becomes its two hex groups first.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(t);
  const hex = quad
    ? `${t.slice(0, quad.index)}${((+quad[1]! << 8) | +quad[2]!).toString(16)}:${((+quad[3]! << 8) | +quad[4]!).toString(16)}`
    : t;
  const [head = '', tail] = hex.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = [...headGroups, ...(tail === undefined ? [] : zeros), ...tailGroups];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[i * 2] = v >> 8;
    bytes[i * 2 + 1] = v & 0xff;
  });
  return bytes;
}

const isV4 = (a: Address): boolean => V4_MAPPED_PREFIX.every((b, i) => a[i] === b);

function formatAddress(a: Address): string {
  if (isV4(a)) return `${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((a[i]! << 8) | a[i + 1]!).toString(16));
  return groups.join(':');
}

/** Parses `a.b.c.d/n`, `x::y/n` or a bare address (a single host); throws on anything else. */
export function parseCidr(text: string): Cidr {
  const [addr = '', bits] = text.trim().split('/');
  const bytes = parseAddress(addr);
  if (!bytes) throw new Error(`not an IP address or CIDR: ${text}`);
  const max = isIPv4(addr.trim()) ? 32 : 128;
  const n = bits === undefined ? max : Number(bits);
  if (!Number.isInteger(n) || n < 0 || n > max || (bits !== undefined && !/^\d+$/.test(bits))) {
    throw new Error(`bad prefix length in ${text}`);
  }
  // IPv4 prefixes count within the mapped form's last 32 bits.
  return { bytes, prefixBits: max === 32 ? 96 + n : n };
}

/** The mask of the byte that still has `bitsLeft` prefix bits to cover. */
const byteMask = (bitsLeft: number): number => (bitsLeft >= 8 ? 0xff : (0xff << (8 - bitsLeft)) & 0xff);

function matches(cidr: Cidr, a: Address): boolean {
  for (let i = 0, bits = cidr.prefixBits; bits > 0; i++, bits -= 8) {
    if ((cidr.bytes[i]! & byteMask(bits)) !== (a[i]! & byteMask(bits))) return false;
  }
  return true;
}

/** One hop of X-Forwarded-For or Forwarded's `for=`, without port, brackets or quotes. */
function hopAddress(entry: string): string {
  let e = entry.trim().replace(/^"|"$/g, '');
  if (e.startsWith('[')) return e.slice(1, e.indexOf(']'));
  // a.b.c.d:port; a bare IPv6 address has more than one colon and no port.
  if (e.split(':').length === 2) e = e.slice(0, e.indexOf(':'));
  return e;
}

/** The `for=` hops of Forwarded header values, left to right. */
function forwardedHops(values: string[]): string[] {
  const hops: string[] = [];
  for (const element of values.join(',').split(',')) {
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq > 0 && pair.slice(0, eq).trim().toLowerCase() === 'for') hops.push(pair.slice(eq + 1));
    }
  }
  return hops;
}

export interface ConnectionOrigin {
  /** The TCP peer, as uWS reports it. */
  peer: string;
  /** The source address of a PROXY protocol header on this connection; '' when there was none. */
  proxied: string;
  /** Every value of the configured forwarded-for header, in the order received. */
  forwardedFor: string[];
}

/**
 * The header the trusted proxies write. Only that one is read: a proxy that appends
 * X-Forwarded-For passes a client's own `Forwarded` header on untouched, and the other way round.
 */
export type ForwardedHeader = 'x-forwarded-for' | 'forwarded' | 'none';

export interface ClientAddressOptions {
  /** CIDRs (or single addresses) whose PROXY headers and forwarded-for headers are believed. */
  trustedProxies: string[];
  forwardedHeader: ForwardedHeader;
  /** IPv6 addresses sharing this many leading bits count as one client. */
  ipv6PrefixLength: number;
}

export class ClientAddressResolver {
  private readonly trusted: Cidr[];
  private readonly ipv6PrefixLength: number;
  /** The header to collect from the upgrade request; null when none is read. */
  readonly forwardedHeader: Exclude<ForwardedHeader, 'none'> | null;

  constructor(opts: ClientAddressOptions) {
    this.trusted = opts.trustedProxies.map(parseCidr);
    this.ipv6PrefixLength = opts.ipv6PrefixLength;
    this.forwardedHeader = opts.forwardedHeader === 'none' || this.trusted.length === 0 ? null : opts.forwardedHeader;
  }

  /** Whether a PROXY protocol header may be believed at all (skip reading it otherwise). */
  get hasTrustedProxies(): boolean {
    return this.trusted.length > 0;
  }

  private isTrusted(a: Address): boolean {
    return this.trusted.some((c) => matches(c, a));
  }

  /**
   * The client's address. Walks from the TCP peer towards the client through hops a trusted proxy
   * vouches for, and stops at the first untrusted one: a client can prepend anything to the
   * headers, but cannot forge what a trusted proxy appended after it.
   */
  resolve(origin: ConnectionOrigin): string {
    let current = parseAddress(origin.peer);
    if (!current) return origin.peer;
    if (!this.isTrusted(current)) return formatAddress(current);
    if (origin.proxied !== '') {
      const proxied = parseAddress(origin.proxied);
      if (!proxied) return formatAddress(current);
      current = proxied;
    }
    if (this.forwardedHeader === null) return formatAddress(current);
    const hops =
      this.forwardedHeader === 'forwarded' ? forwardedHops(origin.forwardedFor) : origin.forwardedFor.join(',').split(',');
    for (let i = hops.length - 1; i >= 0 && this.isTrusted(current); i--) {
      const next = parseAddress(hopAddress(hops[i]!));
      // An obfuscated or garbled hop ("unknown", "_hidden"): the last proxy we trust is all we know.
      if (!next) break;
      current = next;
    }
    return formatAddress(current);
  }

  /** The key per-address limits count under: the address, or its IPv6 prefix. */
  limitKey(address: string): string {
    const a = parseAddress(address);
    if (!a || isV4(a) || this.ipv6PrefixLength >= 128) return address;
    const masked = new Uint8Array(16);
    for (let i = 0, bits = this.ipv6PrefixLength; bits > 0; i++, bits -= 8) {
      masked[i] = a[i]! & byteMask(bits);
    }
    return `${formatAddress(masked)}/${this.ipv6PrefixLength}`;
  }
}
