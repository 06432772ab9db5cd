// signalctl's side of the operator API: one call per request, a timeout on each, and every failure
// turned into one line an operator can act on.
export class CliError extends Error {}

export interface OperatorClientOptions {
  /** A node's base URL, e.g. http://localhost:8080. */
  url: string | undefined;
  /** An ADMIN_API_KEYS key or an admin JWT. */
  key: string | undefined;
  timeoutMs: number;
}

export class OperatorClient {
  private readonly opts: OperatorClientOptions;

  constructor(opts: OperatorClientOptions) {
    this.opts = { ...opts, url: opts.url && nodeUrl(opts.url), key: opts.key && bareKey(opts.key) };
  }

  get hasUrl(): boolean {
    return this.opts.url !== undefined;
  }

  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const { url, key, timeoutMs } = this.opts;
    if (!url) throw new CliError('no node to talk to: set SIGNALCTL_URL or pass --url (e.g. http://localhost:8080)');
    if (!key) throw new CliError('no API key: set SIGNALCTL_KEY or pass --key (a key from ADMIN_API_KEYS, or an admin token)');
    let res: Response;
    try {
      res = await fetch(new URL(path, url), {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new CliError(`cannot reach ${url} (${cause})`);
    }
    const text = await res.text();
    let parsed: any;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new CliError(`${url} answered ${res.status} with something that is not JSON: is it a signaling node?`);
    }
    if (!res.ok) throw new CliError(`${res.status} ${parsed?.error ?? 'error'}: ${parsed?.message ?? text}`);
    return parsed as T;
  }
}

/** `localhost:8080` as `http://localhost:8080`: an operator types a node's address the short way. */
export function nodeUrl(given: string): string {
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? given : `http://${given}`;
  if (!URL.canParse(url)) throw new CliError(`${given} is not a node's URL (e.g. http://localhost:8080)`);
  return url;
}

/**
 * The key as the API wants it: an ADMIN_API_KEYS entry pasted whole (`write:KEY`) is the key KEY.
 * A configured key never starts with `read:` or `write:`, since ADMIN_API_KEYS reads that as its scope.
 */
export function bareKey(given: string): string {
  return given.replace(/^(read|write):/, '');
}
