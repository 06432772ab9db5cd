// The container image recipe, read as Docker reads it (no Docker engine runs here): stages, the
// final stage's contents and runtime settings, and which files the .dockerignore lets into the
// build context.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const [op, ...rest] = full.split(/\s+/);
    out.push({ op: op!.toUpperCase(), args: full.slice(op!.length).trim() || rest.join(' ') });
  }
  return out;
}

function stages(all: Instruction[]): { from: string; name?: string; body: Instruction[] }[] {
  const globalArgs = new Map<string, string>();
  const result: { from: string; name?: string; body: Instruction[] }[] = [];
  for (const i of all) {
    if (i.op === 'ARG' && result.length === 0) {
      const [k, v] = i.args.split('=');
      globalArgs.set(k!, v ?? '');
    } else if (i.op === 'FROM') {
      const [image, as, name] = i.args.split(/\s+/);
      const from = image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => globalArgs.get(a ?? b) ?? '');
      result.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, body: [] });
    } else {
      result.at(-1)?.body.push(i);
    }
  }
  return result;
}

/** `.dockerignore` semantics: last matching pattern wins, `!` re-includes, a match on a parent directory counts. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const source = pattern
        .split(/(\*\*|\*|\?)/)
        .map((part) =>
          part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
        )
        .join('');
      return { negate, re: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) excluded = !rule.negate;
    return excluded;
  };
}

const dockerfile = instructions(read('Dockerfile'));
const [build, runtime] = [stages(dockerfile).at(0)!, stages(dockerfile).at(-1)!];
const final = (op: string) => runtime.body.filter((i) => i.op === op);

describe('Dockerfile', () => {
  it('builds in a separate stage and runs on Node 20 bookworm-slim pinned by tag', () => {
    const all = stages(dockerfile);
    expect(all.length).toBeGreaterThanOrEqual(2);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(engines).toMatch(/^\^20\.\d+ \|\| \^22$/);
    const minimumMinor = Number(/^\^20\.(\d+)/.exec(engines)![1]);
    for (const stage of all) {
      const tag = /^node:20\.(\d+)\.(\d+)-bookworm-slim$/.exec(stage.from);
      expect(tag, stage.from).not.toBeNull();
      expect(Number(tag![1])).toBeGreaterThanOrEqual(minimumMinor);
    }
    expect(build.body.some((i) => i.op === 'RUN' && /npm run build/.test(i.args))).toBe(true);
  });

  it('installs production dependencies only, with npm ci, in the final stage', () => {
    const runs = final('RUN').map((i) => i.args);
    expect(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    // An image built on Node 22 (NODE_IMAGE) needs the optional uws-pack, its uWebSockets.js build.
    expect(runs.some((r) => /--omit=optional|--no-optional/.test(r))).toBe(false);
    expect(runs.some((r) => /\bnpm (install|i)\b/.test(r))).toBe(false);
  });

  it('ships what the server needs at run time and nothing from the whole context', () => {
    const copies = final('COPY').map((i) => i.args);
    expect(copies.some((c) => /^\.\s/.test(c))).toBe(false);
    for (const needed of ['db', 'signaling-server/public', 'signaling-server/dist', 'client/dist', 'package-lock.json']) {
      expect(
        copies.some((c) => c.split(/\s+/).some((part) => part.replace(/^(\/app\/|\.\/)/, '') === needed)),
        needed,
      ).toBe(true);
    }
  });

  it('runs as a non-root numeric user, with only /tmp for writes', () => {
    const users = final('USER').map((i) => i.args);
    expect(users).toHaveLength(1);
    const [uid, gid] = users[0]!.split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
    const env = final('ENV')
      .map((i) => i.args)
      .join(' ');
    expect(/DATA_DIR=(\S+)/.exec(env)?.[1]).toMatch(/^\/tmp\//);
  });

  it('starts node directly (exec form) so SIGTERM reaches it, and says SIGTERM stops it', () => {
    expect(final('STOPSIGNAL').map((i) => i.args)).toEqual(['SIGTERM']);
    const entry = final('ENTRYPOINT');
    expect(entry).toHaveLength(1);
    expect(JSON.parse(entry[0]!.args)).toEqual(['node', 'signaling-server/dist/main.js']);
    expect(final('CMD')).toEqual([]);
  });

  it('has a HEALTHCHECK against /healthz on the configured port', () => {
    const check = final('HEALTHCHECK');
    expect(check).toHaveLength(1);
    const cmd = /CMD\s+(\[.*\])$/.exec(check[0]!.args);
    expect(cmd, 'exec-form CMD').not.toBeNull();
    const argv = JSON.parse(cmd![1]!) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.join(' ')).toContain('/healthz');
    expect(check[0]!.args).toMatch(/--timeout=\d+s/);
    expect(final('EXPOSE').map((i) => i.args)).toEqual(['8080']);
    expect(
      /PORT=(\d+)/.exec(
        final('ENV')
          .map((i) => i.args)
          .join(' '),
      )?.[1],
    ).toBe('8080');
  });
});

describe('.dockerignore', () => {
  const excluded = dockerignore(read('.dockerignore'));

  it('keeps secrets, dependencies, build output, data and tests out of the build context', () => {
    for (const path of [
      '.env',
      '.env.local',
      '.git/config',
      'node_modules/pg/package.json',
      'signaling-server/dist/main.js',
      'client/dist/index.js',
      'data/pglite/PG_VERSION',
      'signaling-server/test/unit/pod-watcher.test.ts',
      'k8s/base/deployment.yaml',
      'docs/deployment.md',
      'load-tests/run.ts',
      'docker-compose.yml',
    ]) {
      expect(excluded(path), path).toBe(true);
    }
  });

  it('lets in every file the Dockerfile copies from the context', () => {
    const fromContext = dockerfile
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(fromContext.length).toBeGreaterThan(0);
    const representative: Record<string, string> = {
      client: 'client/src/index.ts',
      'signaling-server': 'signaling-server/src/main.ts',
      'signaling-server/public': 'signaling-server/public/index.html',
      db: 'db/001_initial.sql',
    };
    for (const source of fromContext) {
      const path = representative[source] ?? source;
      expect(excluded(path), path).toBe(false);
    }
    // The compilers' configs come along with the sources.
    for (const path of ['client/tsconfig.json', 'signaling-server/tsconfig.json']) expect(excluded(path), path).toBe(false);
  });

  it('is matched the way Docker matches it', () => {
    const rules = dockerignore('*\n!keep/\nkeep/secret.txt\n');
    expect(rules('anything')).toBe(true);
    expect(rules('keep/file')).toBe(false);
    expect(rules('keep/secret.txt')).toBe(true);
  });
});
