// Serves the demo page and the browser client: small files, read once and kept in memory.
import { readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.d.ts': 'text/plain; charset=utf-8',
};

export interface StaticFile {
  body: Buffer;
  type: string;
}

/** Maps URL prefixes to directories; "/" maps to index.html. */
export class StaticFiles {
  private readonly cache = new Map<string, StaticFile | null>();

  constructor(private readonly mounts: { prefix: string; dir: string }[]) {}

  lookup(urlPath: string): StaticFile | null {
    const cached = this.cache.get(urlPath);
    if (cached !== undefined) return cached;
    const file = this.read(urlPath);
    if (this.cache.size < 1000) this.cache.set(urlPath, file);
    return file;
  }

  private read(urlPath: string): StaticFile | null {
    const path = urlPath.endsWith('/') ? `${urlPath}index.html` : urlPath;
    for (const { prefix, dir } of this.mounts) {
      if (!path.startsWith(prefix)) continue;
      const relative = normalize(decodeURIComponent(path.slice(prefix.length)));
      if (relative.startsWith('..') || relative.includes(`${sep}..`)) return null;
      const full = join(dir, relative);
      try {
        if (!statSync(full).isFile()) continue;
        return { body: readFileSync(full), type: TYPES[extname(full)] ?? 'application/octet-stream' };
      } catch {
        continue;
      }
    }
    return null;
  }
}
