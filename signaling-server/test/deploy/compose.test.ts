// docker-compose.yml, the HAProxy config and the compose Prometheus config, checked as files (no
// Docker engine runs here): the services, images, ports, environment and wiring that make
// `docker compose up` a three-node cluster behind one URL.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');

/** Compose variable interpolation with an empty environment: ${VAR:-default} and ${VAR-default}. */
function interpolate(value: unknown): unknown {
  if (typeof value === 'string')
    return value.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_, _name: string, fallback?: string) => fallback ?? '');
  if (Array.isArray(value)) return value.map(interpolate);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v)]));
  return value;
}

const compose = interpolate(parse(read('docker-compose.yml'), { merge: true })) as Obj;
const services = compose.services as Record<string, Obj>;
const nodes = Object.entries(services).filter(([, s]) => s.image === services['signaling-1']?.image);
const drainMs = Number(services['signaling-1']?.environment.DRAIN_TIMEOUT_MS);

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(duration);
  if (!m) throw new Error(`unsupported duration ${duration}`);
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60, h: 3600 } as Record<string, number>)[m[2]!]!;
}

/** HAProxy sections: `name args` header lines, indented directive lines. */
function haproxy(text: string): { kind: string; name: string; lines: string[] }[] {
  const sections: { kind: string; name: string; lines: string[] }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trimEnd();
    if (!line.trim()) continue;
    if (/^\S/.test(line)) {
      const [kind, name = ''] = line.trim().split(/\s+/);
      sections.push({ kind: kind!, name, lines: [] });
    } else {
      sections.at(-1)?.lines.push(line.trim());
    }
  }
  return sections;
}

describe('docker-compose.yml', () => {
  it("offers coturn from Debian's package behind the `turn` profile, sharing TURN_SECRET with the nodes", async () => {
    const { coturn } = services;
    expect(coturn?.profiles).toEqual(['turn']); // `docker compose up` alone runs no TURN server
    expect(coturn?.build?.context).toBe('deploy/coturn');
    expect(read('deploy/coturn/Dockerfile')).toMatch(/^FROM debian:[a-z]+-slim$[\s\S]*apt-get install[^\n]* coturn/m);
    expect(read('deploy/coturn/Dockerfile')).toMatch(/^USER turnserver$/m);
    // Unset by default on the nodes too, so they hand out no TURN URL without the secret.
    for (const [name, node] of nodes) {
      expect(node.environment.TURN_SECRET, name).toBe('');
      expect(node.environment.ICE_SERVERS, name).toBe('');
    }
    expect(coturn?.environment.TURN_SECRET).toBe('');
    // Without a secret the container refuses to start instead of running an open relay.
    const refused = await promisify(execFile)('sh', [`${ROOT}deploy/coturn/entrypoint.sh`], {
      env: { PATH: process.env.PATH },
    }).catch((e: { code: number; stderr: string }) => e);
    expect(refused).toMatchObject({ code: 2, stderr: expect.stringContaining('set TURN_SECRET') });
  });

  it('runs Postgres 15 and Redis 7 with health checks and named volumes', () => {
    const { postgres, redis } = services;
    expect(postgres?.image).toMatch(/^postgres:15\.\d+/);
    expect(redis?.image).toMatch(/^redis:7\.\d+/);
    for (const [name, s] of [
      ['postgres', postgres],
      ['redis', redis],
    ] as const) {
      expect(s?.healthcheck?.test, name).toBeDefined();
      const [volume] = String(s?.volumes?.[0]).split(':');
      expect(Object.keys(compose.volumes), name).toContain(volume);
    }
  });

  it('runs three signaling nodes from one image, each with its own NODE_ID', () => {
    expect(nodes.map(([name]) => name)).toEqual(['signaling-1', 'signaling-2', 'signaling-3']);
    const ids = nodes.map(([, s]) => s.environment.NODE_ID);
    expect(new Set(ids).size).toBe(3);
    for (const [name, s] of nodes) {
      expect(s.build?.context, name).toBe('.');
      expect(s.ports, `${name} is reached through the load balancer only`).toBeUndefined();
    }
  });

  it('points every node at the compose Postgres and Redis, with the password Postgres was given', () => {
    for (const [name, s] of nodes) {
      const database = new URL(s.environment.DATABASE_URL);
      const redis = new URL(s.environment.REDIS_URL);
      expect(database.hostname, name).toBe('postgres');
      expect(redis.hostname, name).toBe('redis');
      expect(database.username).toBe(services.postgres!.environment.POSTGRES_USER);
      expect(decodeURIComponent(database.password)).toBe(services.postgres!.environment.POSTGRES_PASSWORD);
      expect(database.pathname.slice(1)).toBe(services.postgres!.environment.POSTGRES_DB);
      expect(s.depends_on.postgres.condition).toBe('service_healthy');
      expect(s.depends_on.redis.condition).toBe('service_healthy');
      expect(s.environment.K8S_POD_WATCH).toBe('off');
    }
  });

  it('runs the nodes read-only with a /tmp tmpfs and stops them with SIGTERM after the drain has had time', () => {
    expect(drainMs).toBeGreaterThan(0);
    for (const [name, s] of nodes) {
      expect(s.read_only, name).toBe(true);
      expect(s.tmpfs, name).toEqual(['/tmp']);
      expect(s.cap_drop, name).toEqual(['ALL']);
      expect(s.stop_signal, name).toBe('SIGTERM');
      expect(seconds(s.stop_grace_period), name).toBeGreaterThan(drainMs / 1000);
    }
  });

  it('publishes one URL through the load balancer and Prometheus, with every image pinned by tag', () => {
    const lb = services.lb!;
    const port = Number(nodes[0]![1].environment.PORT);
    expect(lb.ports, 'published on the loopback interface unless PUBLISH_ADDRESS says otherwise').toEqual([
      `127.0.0.1:8080:${port}`,
    ]);
    expect(lb.volumes).toContain('./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    expect(services.prometheus?.volumes).toContain('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(services.prometheus?.ports).toEqual(['127.0.0.1:9090:9090']);
    for (const [name, s] of Object.entries(services)) {
      expect(s.image, name).toMatch(/^[\w./-]+:[\w.-]+$/);
      expect(s.image, name).not.toMatch(/:latest$/);
    }
  });
});

describe('deploy/haproxy/haproxy.cfg', () => {
  const sections = haproxy(read('deploy/haproxy/haproxy.cfg'));
  const section = (kind: string) => sections.filter((s) => s.kind === kind);

  it('listens on the port compose publishes and sends everything to the node backend', () => {
    const [frontend] = section('frontend');
    const published = Number(String(services.lb!.ports[0]).split(':')[1]);
    expect(frontend!.lines).toContain(`bind :${published}`);
    const backendName = /^default_backend (\S+)$/.exec(frontend!.lines.find((l) => l.startsWith('default_backend'))!)![1];
    expect(section('backend').map((b) => b.name)).toEqual([backendName]);
  });

  it('balances over every compose node on its PORT, checking /readyz so draining nodes leave the rotation', () => {
    const [backend] = section('backend');
    const servers = backend!.lines.filter((l) => l.startsWith('server ')).map((l) => l.split(/\s+/)[2]);
    expect(servers).toEqual(nodes.map(([name, s]) => `${name}:${s.environment.PORT}`));
    expect(backend!.lines).toContain('option httpchk');
    // uWebSockets.js leaves HTTP/1.0 requests (HAProxy's default for checks) unanswered.
    expect(backend!.lines.some((l) => /^http-check send meth GET uri \/readyz ver HTTP\/1\.1 hdr Host \S+$/.test(l))).toBe(true);
    expect(backend!.lines.some((l) => /^http-check expect status 200$/.test(l))).toBe(true);
    const defaults = section('defaults')[0]!.lines;
    expect(defaults.some((l) => /^default-server .*\bcheck\b/.test(l))).toBe(true);
  });

  it('needs no stickiness and keeps WebSocket tunnels open past the server idle timeout', () => {
    const all = sections.flatMap((s) => s.lines);
    expect(all.filter((l) => /^(cookie|stick|stick-table|balance (source|uri|hdr)|hash-type)\b/.test(l))).toEqual([]);
    const tunnel = all.find((l) => l.startsWith('timeout tunnel'));
    expect(seconds(tunnel!.split(/\s+/)[2]!)).toBeGreaterThan(30);
    expect(all.find((l) => l.startsWith('mode'))).toBe('mode http');
  });

  it('names each client to the nodes with the PROXY protocol, which the nodes trust from the compose network', () => {
    const defaults = section('defaults')[0]!.lines;
    expect(defaults.some((l) => /^default-server .*\bsend-proxy-v2\b/.test(l))).toBe(true);
    for (const [, s] of nodes) expect(String(s.environment.TRUSTED_PROXIES)).toContain('172.16.0.0/12');
  });

  it('does not serve /metrics to the public side', () => {
    const [frontend] = section('frontend');
    expect(frontend!.lines.some((l) => /^http-request deny\b.*path_beg \/metrics/.test(l))).toBe(true);
  });
});

describe('deploy/prometheus/prometheus.yml', () => {
  it('scrapes /metrics of every node directly, labelled like the Kubernetes targets', () => {
    const config = parse(read('deploy/prometheus/prometheus.yml')) as Obj;
    const job = (config.scrape_configs as Obj[]).find((j) => j.job_name === 'signaling');
    expect(job?.metrics_path).toBe('/metrics');
    const targets = (job!.static_configs as Obj[]).flatMap((c) => c.targets as string[]);
    expect(targets).toEqual(nodes.map(([name, s]) => `${name}:${s.environment.PORT}`));
    expect(job!.static_configs[0].labels.namespace).toBeTruthy();
    const podLabel = (job!.relabel_configs as Obj[]).find((r) => r.target_label === 'pod');
    // Prometheus anchors relabel regexes; JavaScript's replace understands the same $1.
    const pod = targets[0]!.replace(new RegExp(`^(?:${podLabel!.regex})$`), podLabel!.replacement);
    expect(pod).toBe('signaling-1');
  });
});
