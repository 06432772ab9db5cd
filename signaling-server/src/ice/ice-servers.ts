// The ICE servers a participant is told to use: the operator's STUN and TURN URLs, with fresh TURN
// credentials bound to that participant. The rooms layer asks for them at every join, resume and
// `ice-servers` request; it knows nothing of how they are made.
import { mintTurnCredential } from './turn-credentials.js';

/** The shape of a browser's RTCIceServer, as sent to clients. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

export interface IssuedIceServers {
  iceServers: IceServer[];
  /** How long the TURN credentials stay valid from now, in ms; absent when there are none. */
  ttlMs?: number;
}

/** The rooms layer's view: something that issues ICE servers for a participant. */
export interface IceServerSource {
  issue(identity: string): IssuedIceServers;
}

export interface IceServerIssuerOptions {
  /** `stun:`, `stuns:`, `turn:` and `turns:` URLs. */
  urls: string[];
  /** The TURN shared secret; required when `urls` has a TURN URL. */
  turnSecret?: string;
  ttlSeconds: number;
  /** Current time in ms; a parameter so tests can fix it. */
  now?: () => number;
}

const isTurnUrl = (url: string) => /^turns?:/i.test(url);

export class IceServerIssuer implements IceServerSource {
  private readonly stunUrls: string[];
  private readonly turnUrls: string[];
  private readonly now: () => number;

  constructor(private readonly opts: IceServerIssuerOptions) {
    this.stunUrls = opts.urls.filter((u) => !isTurnUrl(u));
    this.turnUrls = opts.urls.filter(isTurnUrl);
    if (this.turnUrls.length > 0 && !opts.turnSecret) throw new Error('TURN URLs need a TURN secret');
    this.now = opts.now ?? Date.now;
  }

  issue(identity: string): IssuedIceServers {
    const now = this.now();
    const expiresAtSeconds = Math.floor(now / 1000) + this.opts.ttlSeconds;
    const iceServers: IceServer[] = [];
    if (this.stunUrls.length > 0) iceServers.push({ urls: [...this.stunUrls] });
    if (this.turnUrls.length > 0) {
      const { username, credential } = mintTurnCredential(this.opts.turnSecret!, identity, expiresAtSeconds);
      iceServers.push({ urls: [...this.turnUrls], username, credential });
    }
    return this.turnUrls.length > 0 ? { iceServers, ttlMs: expiresAtSeconds * 1000 - now } : { iceServers };
  }
}
