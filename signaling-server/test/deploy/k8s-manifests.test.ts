// Renders every overlay (and the root kustomization) with `kubectl kustomize`, validates each
// object against the Kubernetes schemas, and checks the deployment rules on the rendered output:
// what operators apply is what is tested. Needs kubectl on PATH, no cluster.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parse, parseAllDocuments } from 'yaml';
import { DEFAULT_POOL_SIZE } from '../../src/store/database.js';
import { beforeAll, describe, expect, it } from 'vitest';

// Rendered YAML is untyped; the assertions are the type checks.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const OVERLAYS = ['dev', 'staging', 'prod'] as const;
type Overlay = (typeof OVERLAYS)[number];

const EXPECTED: Record<
  Overlay,
  {
    namespace: string;
    replicas: [number, number];
    autoscaler: 'HorizontalPodAutoscaler' | 'ScaledObject';
    logLevel: string;
    inClusterDatastores: boolean;
    disruptionBudget: boolean;
  }
> = {
  dev: {
    namespace: 'signaling-dev',
    replicas: [1, 3],
    autoscaler: 'HorizontalPodAutoscaler',
    logLevel: 'debug',
    inClusterDatastores: true,
    disruptionBudget: false,
  },
  staging: {
    namespace: 'signaling-staging',
    replicas: [2, 5],
    autoscaler: 'ScaledObject',
    logLevel: 'info',
    inClusterDatastores: true,
    disruptionBudget: true,
  },
  prod: {
    namespace: 'signaling-prod',
    replicas: [3, 20],
    autoscaler: 'HorizontalPodAutoscaler',
    logLevel: 'info',
    inClusterDatastores: false,
    disruptionBudget: true,
  },
};
/** The base HorizontalPodAutoscaler as written, which the KEDA ScaledObject must mirror. */
const BASE_HPA = parse(readFileSync(join(ROOT, 'k8s/base/hpa.yaml'), 'utf8')) as Obj;
/** Secrets staging and prod expect the operator to create (docs/deployment.md), never rendered. */
const OPERATOR_SECRETS = ['signaling-secrets', 'signaling-postgres', 'signaling-redis'];

// `never`: each model types its own constructor argument; the rendered objects are checked at run time.
const SCHEMAS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'networking.k8s.io/v1/Ingress': Ingress,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
};

const execFileAsync = promisify(execFile);

async function render(dir: string): Promise<Obj[]> {
  const { stdout } = await execFileAsync('kubectl', ['kustomize', dir], { cwd: ROOT, timeout: 60_000, maxBuffer: 64 << 20 });
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/**
 * The prod overlay with the ingress component, as an operator adds it: a kustomization outside the
 * tree (kustomize takes only relative paths) that lists prod and the component.
 */
async function renderProdWithIngress(): Promise<Obj[]> {
  const dir = mkdtempSync(join(tmpdir(), 'signaling-ingress-'));
  const to = (path: string) => relative(dir, join(ROOT, path));
  try {
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'namespace: signaling-prod',
        'sortOptions:',
        '  order: fifo',
        `resources: [${to('k8s/overlays/prod')}]`,
        `components: [${to('k8s/components/ingress')}]`,
      ].join('\n'),
    );
    return await render(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rendered = {} as Record<Overlay | 'root' | 'prodWithIngress', Obj[]>;

beforeAll(async () => {
  const [root, withIngress, ...overlays] = await Promise.all([
    render('.'),
    renderProdWithIngress(),
    ...OVERLAYS.map((o) => render(`k8s/overlays/${o}`)),
  ]);
  rendered.root = root!;
  rendered.prodWithIngress = withIngress!;
  OVERLAYS.forEach((o, i) => (rendered[o] = overlays[i]!));
});

function all(objs: Obj[], kind: string): Obj[] {
  return objs.filter((o) => o.kind === kind);
}

function one(objs: Obj[], kind: string, name?: string): Obj {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

function signaling(objs: Obj[]) {
  const deployment = one(objs, 'Deployment', 'signaling');
  const pod = deployment.spec.template.spec as Obj;
  const container = (pod.containers as Obj[]).find((c) => c.name === 'signaling')!;
  const env = new Map<string, Obj>((container.env as Obj[]).map((e) => [e.name as string, e]));
  const config = one(objs, 'ConfigMap', container.envFrom[0].configMapRef.name).data as Record<string, string>;
  const port = (container.ports as Obj[]).find((p) => p.name === 'http')!.containerPort as number;
  return { deployment, pod, container, env, config, port };
}

/** Field names not known to the Kubernetes API types of @kubernetes/client-node (typos, misplaced keys). */
function unknownFields(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array && Array.isArray(value)) return value.forEach((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`, out));
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${path}.${k}`, out);
    return;
  }
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => { baseName: string; type: string }[] }>)[type];
  if (!model?.getAttributeTypeMap || typeof value !== 'object') return;
  const known = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = known.get(k);
    if (t === undefined) out.push(`${path}.${k}`);
    else unknownFields(v, t, `${path}.${k}`, out);
  }
}

/** kustomize wraps long base64 values over lines; the API server's decoder skips the newlines. */
function unwrapSecretData(secret: Obj): Obj {
  const data = Object.fromEntries(
    Object.entries((secret.data ?? {}) as Record<string, string>).map(([k, v]) => [k, v.replace(/\s+/g, '')]),
  );
  return { ...secret, data };
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function parseSelector(selector: string): Record<string, string> {
  return Object.fromEntries(selector.split(',').map((term) => term.split('=') as [string, string]));
}

function podTemplates(objs: Obj[]): { owner: string; spec: Obj; labels: Record<string, string> }[] {
  return objs
    .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
    .map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, spec: o.spec.template.spec, labels: o.spec.template.metadata.labels }));
}

/** The parts of Pod Security "restricted" that a manifest can get wrong. */
function restrictedViolations(pod: Obj): string[] {
  const out: string[] = [];
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) out.push('host namespaces');
  if ((pod.volumes ?? []).some((v: Obj) => v.hostPath)) out.push('hostPath volume');
  if (pod.securityContext?.seccompProfile?.type !== 'RuntimeDefault') out.push('pod seccompProfile');
  for (const c of [...(pod.initContainers ?? []), ...pod.containers] as Obj[]) {
    const sc = c.securityContext ?? {};
    if (!(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot)) out.push(`${c.name}: runAsNonRoot`);
    if ((sc.runAsUser ?? pod.securityContext?.runAsUser) === 0) out.push(`${c.name}: runAsUser 0`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation`);
    if (sc.privileged) out.push(`${c.name}: privileged`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${c.name}: readOnlyRootFilesystem`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${c.name}: capabilities.drop ALL`);
    if ((sc.capabilities?.add ?? []).length > 0) out.push(`${c.name}: capabilities.add`);
  }
  return out;
}

function preStopSleepSeconds(container: Obj): number {
  const command = container.lifecycle?.preStop?.exec?.command as string[] | undefined;
  if (!command || !/(^|\/)sleep$/.test(command[0] ?? '')) throw new Error('preStop is not an exec sleep');
  return Number(command[1]);
}

function nearCapacityThreshold(objs: Obj[]): number {
  const rules = (one(objs, 'PrometheusRule', 'signaling').spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
  const rule = rules.find((r) => r.alert === 'SignalingConnectionsNearCapacity');
  const threshold = /signaling_connections\b.*>\s*(\d+)/s.exec(String(rule?.expr));
  if (!threshold) throw new Error('no connections-near-capacity alert with a numeric threshold');
  return Number(threshold[1]);
}

/** What the one autoscaler of an overlay says, whether the base HPA or KEDA's ScaledObject. */
function scaling(objs: Obj[]): { kind: string; min: number; max: number; behavior: Obj; connectionsPerPod: number } {
  const found = objs.filter((o) => o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ScaledObject');
  if (found.length !== 1) throw new Error(`expected one autoscaler, found ${found.map((o) => o.kind).join(', ') || 'none'}`);
  const a = found[0]!;
  if (a.kind === 'HorizontalPodAutoscaler') {
    const pods = (a.spec.metrics as Obj[]).find((m) => m.type === 'Pods')?.pods;
    return {
      kind: a.kind,
      min: a.spec.minReplicas,
      max: a.spec.maxReplicas,
      behavior: a.spec.behavior,
      connectionsPerPod: Number(pods?.target.averageValue),
    };
  }
  const prometheus = (a.spec.triggers as Obj[]).find((t) => t.type === 'prometheus');
  return {
    kind: a.kind,
    min: a.spec.minReplicaCount,
    max: a.spec.maxReplicaCount,
    behavior: a.spec.advanced?.horizontalPodAutoscalerConfig?.behavior,
    connectionsPerPod: Number(prometheus?.metadata.threshold),
  };
}

const allowedKeys = (value: Obj | undefined, keys: string[], path: string, out: string[]) => {
  for (const k of Object.keys(value ?? {})) if (!keys.includes(k)) out.push(`${path}.${k} is not a field`);
};

/**
 * KEDA's CRD is not in kubernetes-models: the ScaledObject fields this project uses, checked against
 * KEDA 2.x's documented shape (keda.sh/v1alpha1); the HPA behavior it passes on goes through the
 * HorizontalPodAutoscaler schema.
 */
function scaledObjectProblems(so: Obj): string[] {
  const out: string[] = [];
  if (so.apiVersion !== 'keda.sh/v1alpha1') out.push(`apiVersion ${so.apiVersion}`);
  allowedKeys(so, ['apiVersion', 'kind', 'metadata', 'spec'], 'ScaledObject', out);
  const spec = so.spec as Obj;
  const specKeys = [
    'scaleTargetRef',
    'pollingInterval',
    'cooldownPeriod',
    'initialCooldownPeriod',
    'idleReplicaCount',
    'minReplicaCount',
    'maxReplicaCount',
    'fallback',
    'advanced',
    'triggers',
  ];
  allowedKeys(spec, specKeys, 'spec', out);
  allowedKeys(spec.scaleTargetRef, ['apiVersion', 'kind', 'name', 'envSourceContainerName'], 'spec.scaleTargetRef', out);
  if (typeof spec.scaleTargetRef?.name !== 'string') out.push('spec.scaleTargetRef.name missing');
  for (const k of ['pollingInterval', 'minReplicaCount', 'maxReplicaCount'])
    if (spec[k] !== undefined && !(Number.isInteger(spec[k]) && spec[k] >= 0))
      out.push(`spec.${k} is not a non-negative integer`);
  if (!(spec.minReplicaCount <= spec.maxReplicaCount)) out.push('minReplicaCount > maxReplicaCount');
  allowedKeys(
    spec.advanced,
    ['restoreToOriginalReplicaCount', 'horizontalPodAutoscalerConfig', 'scalingModifiers'],
    'spec.advanced',
    out,
  );
  const hpaConfig = spec.advanced?.horizontalPodAutoscalerConfig as Obj | undefined;
  allowedKeys(hpaConfig, ['name', 'behavior'], 'spec.advanced.horizontalPodAutoscalerConfig', out);
  if (hpaConfig?.behavior) {
    try {
      const probe = { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'probe' } };
      new HorizontalPodAutoscaler({
        ...probe,
        spec: { scaleTargetRef: { kind: 'Deployment', name: 'x' }, maxReplicas: 1, behavior: hpaConfig.behavior },
      } as never).validate();
    } catch (err) {
      out.push(`behavior: ${(err as Error).message}`);
    }
  }
  const triggers = (spec.triggers ?? []) as Obj[];
  if (triggers.length === 0) out.push('no triggers');
  for (const [i, t] of triggers.entries()) {
    const path = `spec.triggers[${i}]`;
    allowedKeys(t, ['type', 'name', 'metadata', 'metricType', 'authenticationRef', 'useCachedMetrics'], path, out);
    if (!['AverageValue', 'Value', 'Utilization', undefined].includes(t.metricType))
      out.push(`${path}.metricType ${t.metricType}`);
    for (const [k, v] of Object.entries((t.metadata ?? {}) as Obj))
      if (typeof v !== 'string') out.push(`${path}.metadata.${k} must be a string`);
    if (t.type === 'cpu' || t.type === 'memory') {
      if (t.metricType !== 'Utilization' && t.metricType !== 'AverageValue')
        out.push(`${path}: ${t.type} needs metricType Utilization or AverageValue`);
      if (!/^\d+$/.test(t.metadata?.value ?? '')) out.push(`${path}.metadata.value is not a number`);
    } else if (t.type === 'prometheus') {
      if (!/^https?:\/\/[^\s/]+/.test(t.metadata?.serverAddress ?? ''))
        out.push(`${path}.metadata.serverAddress is not an http URL`);
      if (!t.metadata?.query) out.push(`${path}.metadata.query missing`);
      if (!/^\d+(\.\d+)?$/.test(t.metadata?.threshold ?? '')) out.push(`${path}.metadata.threshold is not a number`);
    } else {
      out.push(`${path}: trigger type ${t.type} is not one this project uses`);
    }
  }
  return out;
}

describe('root kustomization', () => {
  it('renders the dev overlay, so `kubectl apply -k .` deploys dev', () => {
    expect(rendered.root).toEqual(rendered.dev);
  });
});

describe.each(OVERLAYS)('overlay %s', (overlay) => {
  const expected = EXPECTED[overlay];
  const objs = () => rendered[overlay];

  it('every object is valid against the Kubernetes schemas and has no unknown fields', () => {
    const problems: string[] = [];
    for (const o of objs()) {
      const id = `${o.kind}/${o.metadata?.name}`;
      if (o.apiVersion === 'monitoring.coreos.com/v1' || o.apiVersion === 'keda.sh/v1alpha1') continue; // CRDs: checked structurally below
      const Model = SCHEMAS[`${o.apiVersion}/${o.kind}`];
      if (!Model) {
        problems.push(`${id}: no schema for ${o.apiVersion}`);
        continue;
      }
      try {
        new Model((o.kind === 'Secret' ? unwrapSecretData(o) : o) as never).validate();
      } catch (err) {
        problems.push(`${id}: ${(err as Error).message}`);
      }
      const version = String(o.apiVersion).split('/').pop()!;
      unknownFields(o, `V${version.slice(1)}${o.kind}`, id, problems);
    }
    expect(problems).toEqual([]);
  });

  it('puts everything in its own namespace, which enforces Pod Security "restricted"', () => {
    const ns = one(objs(), 'Namespace');
    expect(ns.metadata.name).toBe(expected.namespace);
    expect(ns.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    for (const o of objs().filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace, o.kind).toBe(expected.namespace);
  });

  it('every pod passes the restricted Pod Security checks and runs an image pinned by tag', () => {
    for (const { owner, spec } of podTemplates(objs())) {
      expect(restrictedViolations(spec), owner).toEqual([]);
      for (const c of spec.containers as Obj[]) {
        expect(c.image, owner).toMatch(/^[a-z0-9./-]+:[A-Za-z0-9._-]+$/);
        expect(c.image, owner).not.toMatch(/:latest$/);
      }
    }
  });

  it('the Deployment probes /readyz, /healthz and startup on the port the server listens on', () => {
    const { container, env, port } = signaling(objs());
    expect(env.get('PORT')?.value).toBe(String(port));
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.startupProbe.httpGet.port).toBe('http');
    // Startup covers migrations; liveness only begins after it.
    expect(container.startupProbe.periodSeconds * container.startupProbe.failureThreshold).toBeGreaterThanOrEqual(30);
  });

  it('gives a terminating pod time for preStop plus the full drain before SIGKILL', () => {
    const { pod, container, env } = signaling(objs());
    const preStop = preStopSleepSeconds(container);
    const drainSeconds = Number(env.get('DRAIN_TIMEOUT_MS')?.value) / 1000;
    expect(preStop).toBeGreaterThan(0);
    expect(drainSeconds).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStop + drainSeconds + 2);
    expect(pod.terminationGracePeriodSeconds).toBeLessThanOrEqual(preStop + drainSeconds + 30);
  });

  it('rolls out without ever dropping below the current pod count, and leaves the count to the HPA', () => {
    const { deployment } = signaling(objs());
    expect(deployment.spec.strategy.type).toBe('RollingUpdate');
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(deployment.spec.replicas).toBeUndefined();
  });

  it('keeps the Postgres connections of a full-size cluster, mid-rollout, under a default max_connections', () => {
    const { max } = scaling(objs());
    const { deployment, pod, config } = signaling(objs());
    const surge = Number(deployment.spec.strategy.rollingUpdate.maxSurge);
    // Old pods keep their pools while they drain, up to the grace period, and the rollout replaces
    // at most `surge` pods every minReadySeconds: that many may still be draining at once.
    const draining = surge * Math.ceil(pod.terminationGracePeriodSeconds / Math.max(1, deployment.spec.minReadySeconds ?? 0));
    const pods = max + surge + draining;
    const perPod = config.DB_POOL_SIZE === undefined ? DEFAULT_POOL_SIZE : Number(config.DB_POOL_SIZE);
    // Postgres allows 100 by default, 3 of them reserved for superusers; leave room for an operator.
    expect(pods * perPod).toBeLessThanOrEqual(90);
  });

  it('requests CPU and memory and limits memory', () => {
    const { container } = signaling(objs());
    const { requests, limits } = container.resources;
    expect(requests.cpu).toBeTruthy();
    expect(requests.memory).toBeTruthy();
    expect(limits.memory).toBeTruthy();
    expect(bytes(limits.memory)).toBeGreaterThanOrEqual(bytes(requests.memory));
  });

  it('runs as non-root on a read-only root with only /tmp writable', () => {
    const { pod, container } = signaling(objs());
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    const mounts = container.volumeMounts as Obj[];
    expect(mounts.map((m) => m.mountPath)).toEqual(['/tmp']);
    const volume = (pod.volumes as Obj[]).find((v) => v.name === mounts[0]!.name)!;
    expect(volume.emptyDir).toBeDefined();
  });

  it('names each node after its pod and tells the pod watcher its namespace and selector', () => {
    const { deployment, env } = signaling(objs());
    expect(env.get('NODE_ID')?.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(env.get('POD_NAMESPACE')?.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
    const selector = parseSelector(env.get('K8S_POD_SELECTOR')?.value);
    expect(selector).toEqual(deployment.spec.selector.matchLabels);
    expect(labelsMatch(selector, deployment.spec.template.metadata.labels)).toBe(true);
    expect(env.get('K8S_POD_WATCH')?.value).toBe('on');
  });

  it('reads DATABASE_URL, REDIS_URL and the JWT secret from Secrets, never from plain values', () => {
    const { env, config } = signaling(objs());
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'AUTH_JWT_SECRET']) {
      expect(env.get(name)?.valueFrom?.secretKeyRef?.name, name).toBeTruthy();
      expect(env.get(name)?.value, name).toBeUndefined();
    }
    const secretLooking = /URL|SECRET|PASSWORD|TOKEN|KEY/;
    for (const [name, e] of env) if (secretLooking.test(name)) expect(e.value, name).toBeUndefined();
    for (const key of Object.keys(config)) expect(key).not.toMatch(secretLooking);
    for (const { owner, spec } of podTemplates(objs())) {
      for (const c of spec.containers as Obj[]) {
        for (const e of (c.env ?? []) as Obj[]) {
          if (/PASSWORD|SECRET|_URL$/.test(e.name)) expect(e.value, `${owner} ${e.name}`).toBeUndefined();
        }
      }
    }
  });

  it('references only Secrets it renders (dev) or that the operator creates (staging, prod)', () => {
    const secrets = new Map(all(objs(), 'Secret').map((s) => [s.metadata.name as string, s]));
    const refs = podTemplates(objs()).flatMap(({ spec }) =>
      (spec.containers as Obj[]).flatMap((c) => ((c.env ?? []) as Obj[]).map((e) => e.valueFrom?.secretKeyRef).filter(Boolean)),
    ) as Obj[];
    expect(refs.length).toBeGreaterThan(0);
    if (overlay === 'dev') {
      for (const ref of refs) {
        const secret = secrets.get(ref.name);
        expect(secret, ref.name).toBeDefined();
        if (!ref.optional) expect(Object.keys(secret!.data ?? {}), ref.name).toContain(ref.key);
      }
    } else {
      expect(secrets.size).toBe(0);
      for (const ref of refs) expect(OPERATOR_SECRETS).toContain(ref.name);
    }
  });

  it('takes ICE_SERVERS and TURN_SECRET from the Secret by reference, never as values', () => {
    const { env, config } = signaling(objs());
    for (const [name, key] of [
      ['ICE_SERVERS', 'ice-servers'],
      ['TURN_SECRET', 'turn-secret'],
    ] as const) {
      expect(env.get(name)?.value, name).toBeUndefined();
      expect(config[name], name).toBeUndefined();
      expect(env.get(name)?.valueFrom?.secretKeyRef, name).toMatchObject({
        name: expect.stringMatching(/^signaling-secrets/),
        key,
      });
    }
    // Either both or neither: a node refuses to start with a TURN secret and no TURN URL.
    const secret = all(objs(), 'Secret').find((s) => String(s.metadata.name).startsWith('signaling-secrets'));
    const keys = Object.keys(secret?.data ?? {});
    expect(keys.includes('turn-secret')).toBe(keys.includes('ice-servers'));
  });

  it('sets the log level of the environment', () => {
    expect(signaling(objs()).config.LOG_LEVEL).toBe(expected.logLevel);
  });

  it(`autoscales with one ${expected.autoscaler} on CPU and signaling_connections within the environment bounds`, () => {
    const { kind, min, max } = scaling(objs());
    expect(kind).toBe(expected.autoscaler);
    expect([min, max]).toEqual(expected.replicas);
    if (expected.autoscaler === 'ScaledObject') return; // its own test below
    const hpa = one(objs(), 'HorizontalPodAutoscaler');
    const { deployment } = signaling(objs());
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    const metrics = hpa.spec.metrics as Obj[];
    expect(metrics.find((m) => m.type === 'Resource')?.resource).toMatchObject({ name: 'cpu', target: { type: 'Utilization' } });
    const pods = metrics.find((m) => m.type === 'Pods')?.pods;
    expect(pods?.metric.name).toBe('signaling_connections');
    expect(pods?.target.type).toBe('AverageValue');
  });

  it('scales down slowly enough that the remaining pods absorb a drained pod', () => {
    const { behavior, connectionsPerPod, min } = scaling(objs());
    const { pod } = signaling(objs());
    const down = behavior.scaleDown;
    expect(down.stabilizationWindowSeconds).toBeGreaterThanOrEqual(300);
    const policies = down.policies as Obj[];
    expect(policies.length).toBeGreaterThan(0);
    for (const p of policies) {
      expect(p.type).toBe('Pods');
      // One drain is over (grace period) and its clients have reconnected before the next starts.
      expect(p.periodSeconds).toBeGreaterThanOrEqual(2 * pod.terminationGracePeriodSeconds);
    }
    const values = policies.map((p) => p.value as number);
    const step = policies.length === 1 || down.selectPolicy === 'Min' ? Math.min(...values) : Math.max(...values);
    // Worst case: the smallest fleet that may shrink, every pod at the target, loses `step` pods.
    const fleet = min + step;
    const perSurvivor = (connectionsPerPod * fleet) / (fleet - step);
    expect(perSurvivor).toBeLessThanOrEqual(nearCapacityThreshold(objs()));
    expect(down.selectPolicy).not.toBe('Disabled');
    expect(behavior.scaleUp).toBeDefined();
  });

  it(`${expected.disruptionBudget ? 'has' : 'has no'} PodDisruptionBudget that leaves clients somewhere to go`, () => {
    const pdbs = all(objs(), 'PodDisruptionBudget');
    if (!expected.disruptionBudget) {
      expect(pdbs).toEqual([]);
      return;
    }
    const { deployment } = signaling(objs());
    expect(pdbs).toHaveLength(1);
    const spec = pdbs[0]!.spec;
    expect(labelsMatch(spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
    expect(spec.maxUnavailable).toBe(1);
    expect(scaling(objs()).min).toBeGreaterThan(spec.maxUnavailable);
  });

  it('exposes the pods through a Service without session affinity', () => {
    const service = one(objs(), 'Service', 'signaling');
    const { deployment, container } = signaling(objs());
    expect(labelsMatch(service.spec.selector, deployment.spec.template.metadata.labels)).toBe(true);
    expect(service.spec.sessionAffinity ?? 'None').toBe('None');
    const ports = service.spec.ports as Obj[];
    expect(ports.map((p) => p.targetPort)).toEqual(['http']);
    expect((container.ports as Obj[]).map((p) => p.name)).toContain('http');
  });

  it('lets its service account get, list and watch pods in its own namespace and nothing more', () => {
    const { pod } = signaling(objs());
    const account = one(objs(), 'ServiceAccount', pod.serviceAccountName);
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(account.automountServiceAccountToken).toBe(false);
    expect(all(objs(), 'ClusterRole')).toEqual([]);
    expect(all(objs(), 'ClusterRoleBinding')).toEqual([]);
    const binding = one(objs(), 'RoleBinding');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: expected.namespace }]);
    expect(binding.roleRef.kind).toBe('Role');
    const role = one(objs(), 'Role', binding.roleRef.name);
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
  });

  it('limits traffic: ingress to the HTTP port, egress to DNS, the API server, Postgres and Redis only', () => {
    const { deployment, port } = signaling(objs());
    const policy = all(objs(), 'NetworkPolicy').find((p) =>
      labelsMatch(p.spec.podSelector.matchLabels, deployment.spec.template.metadata.labels),
    )!;
    expect(policy).toBeDefined();
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const ingressPorts = (policy.spec.ingress as Obj[]).flatMap((r) => r.ports as Obj[]);
    expect(ingressPorts).toEqual([{ port, protocol: 'TCP' }]);

    const egress = policy.spec.egress as Obj[];
    for (const rule of egress) expect(rule.ports?.length, JSON.stringify(rule)).toBeGreaterThan(0);
    const allowed = new Set(['53/UDP', '53/TCP', '443/TCP', '6443/TCP', '5432/TCP', '6379/TCP']);
    const opened = egress.flatMap((r) => (r.ports as Obj[]).map((p) => `${p.port}/${p.protocol}`));
    expect(opened.filter((p) => !allowed.has(p))).toEqual([]);
    for (const needed of ['53/UDP', '443/TCP', '5432/TCP', '6379/TCP']) expect(opened).toContain(needed);

    if (expected.inClusterDatastores) {
      // In-cluster Postgres and Redis: egress goes to those pods only, on the ports they listen on.
      for (const name of ['postgres', 'redis']) {
        const set = one(objs(), 'StatefulSet', name);
        const containerPort = set.spec.template.spec.containers[0].ports[0].containerPort;
        const rule = egress.find((r) => (r.ports as Obj[]).some((p) => p.port === containerPort))!;
        expect(rule.to, name).toHaveLength(1);
        expect(labelsMatch(rule.to[0].podSelector.matchLabels, set.spec.template.metadata.labels), name).toBe(true);
        const theirs = all(objs(), 'NetworkPolicy').find((p) =>
          labelsMatch(p.spec.podSelector.matchLabels, set.spec.template.metadata.labels),
        );
        expect(theirs?.spec.ingress[0].from[0].podSelector.matchLabels, `${name} admits signaling`).toEqual(
          deployment.spec.selector.matchLabels,
        );
      }
    }
  });

  it(`${expected.inClusterDatastores ? 'runs' : 'does not run'} Postgres and Redis in the namespace`, () => {
    const sets = all(objs(), 'StatefulSet')
      .map((s) => s.metadata.name)
      .sort();
    expect(sets).toEqual(expected.inClusterDatastores ? ['postgres', 'redis'] : []);
    if (!expected.inClusterDatastores) return;
    const postgres = one(objs(), 'StatefulSet', 'postgres').spec.template.spec.containers[0];
    const redis = one(objs(), 'StatefulSet', 'redis').spec.template.spec.containers[0];
    expect(postgres.image).toMatch(/^postgres:15\.\d+/);
    expect(redis.image).toMatch(/^redis:7\.\d+/);
    expect(postgres.readinessProbe).toBeDefined();
    expect(redis.readinessProbe).toBeDefined();
    for (const name of ['postgres', 'redis']) {
      const set = one(objs(), 'StatefulSet', name);
      const service = one(objs(), 'Service', name);
      expect(labelsMatch(service.spec.selector, set.spec.template.metadata.labels), name).toBe(true);
      expect(set.spec.volumeClaimTemplates).toHaveLength(1);
    }
  });

  it('scrapes /metrics with a ServiceMonitor that selects the Service and names its port', () => {
    const monitor = one(objs(), 'ServiceMonitor');
    const service = one(objs(), 'Service', 'signaling');
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(Object.keys(monitor.spec).sort()).toEqual(['endpoints', 'jobLabel', 'selector']);
    expect(labelsMatch(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true);
    expect(service.metadata.labels[monitor.spec.jobLabel]).toBe('signaling'); // the alerts match job="signaling"
    const serviceNames = (service.spec.ports as Obj[]).map((p) => p.name);
    for (const endpoint of monitor.spec.endpoints as Obj[]) {
      expect(Object.keys(endpoint).every((k) => ['port', 'path', 'interval', 'scrapeTimeout'].includes(k))).toBe(true);
      expect(serviceNames).toContain(endpoint.port);
      expect(endpoint.path).toBe('/metrics');
    }
  });

  it('alerts on node down, error rate, p99 latency, Redis or Postgres unreachable, bus gaps, and connections near capacity', () => {
    const rule = one(objs(), 'PrometheusRule');
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    const rules = (rule.spec.groups as Obj[]).flatMap((g) => {
      expect(Object.keys(g).sort()).toEqual(['name', 'rules']);
      return g.rules as Obj[];
    });
    for (const r of rules) {
      expect(
        Object.keys(r).every((k) => ['alert', 'expr', 'for', 'labels', 'annotations'].includes(k)),
        r.alert,
      ).toBe(true);
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(['critical', 'warning'], r.alert).toContain(r.labels.severity);
      expect(r.annotations.summary, r.alert).toBeTruthy();
    }
    const find = (re: RegExp) => rules.filter((r) => re.test(String(r.expr))).map((r) => r.alert as string);
    expect(find(/\bup\{job="signaling"\}\s*==\s*0/)).toHaveLength(1);
    expect(find(/signaling_errors_total[\s\S]*\/[\s\S]*signaling_messages_received_total/)).toHaveLength(1);
    expect(find(/histogram_quantile\(0\.99,[\s\S]*signaling_join_seconds_bucket/)).toHaveLength(1);
    expect(find(/signaling_bus_up\b/)).toHaveLength(1);
    expect(find(/signaling_db_up\b/)).toHaveLength(1);
    expect(find(/signaling_connections\b/)).toHaveLength(1);
    // A bus whose log lost messages, and one whose subscriber keeps being cut.
    expect(find(/signaling_bus_gaps_total\b/)).toHaveLength(1);
    expect(find(/signaling_bus_recovered_total\b/)).toHaveLength(1);
  });

  it('renders the Namespace first, the config before the Deployment, the Deployment and its Service before the dashboard', () => {
    const at = (kind: string, name: string) => objs().findIndex((o) => o.kind === kind && o.metadata.name === name);
    const { container } = signaling(objs());
    expect(objs()[0]!.kind).toBe('Namespace');
    expect(at('ConfigMap', container.envFrom[0].configMapRef.name)).toBeLessThan(at('Deployment', 'signaling'));
    expect(at('Deployment', 'signaling')).toBeLessThan(at('ConfigMap', 'signaling-grafana-dashboard'));
    expect(at('Service', 'signaling')).toBeLessThan(at('ConfigMap', 'signaling-grafana-dashboard'));
    // Every Secret a pod reads that the overlay renders comes before the pods.
    const firstPod = objs().findIndex((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
    for (const [i, o] of objs().entries()) if (o.kind === 'Secret') expect(i, o.metadata.name).toBeLessThan(firstPod);
  });

  it('ships the Grafana dashboard as a ConfigMap the dashboard sidecar picks up', () => {
    const map = one(objs(), 'ConfigMap', 'signaling-grafana-dashboard');
    expect(map.metadata.labels.grafana_dashboard).toBe('1');
    const [file] = Object.keys(map.data);
    const dashboard = JSON.parse(map.data[file!]) as Obj;
    expect(dashboard.uid).toBe('signaling-cluster');
    expect((dashboard.panels as Obj[]).filter((p) => p.type !== 'row').length).toBeGreaterThanOrEqual(10);
  });
});

// Every overlay that opts into the keda-autoscaling component.
describe.each(OVERLAYS.filter((o) => EXPECTED[o].autoscaler === 'ScaledObject'))('overlay %s with KEDA', (overlay) => {
  const expected = EXPECTED[overlay];
  const objs = () => rendered[overlay];

  it("the KEDA ScaledObject is well-formed and scales like the base HPA, on this namespace's connections", () => {
    const so = one(objs(), 'ScaledObject');
    const { deployment } = signaling(objs());
    expect(scaledObjectProblems(so)).toEqual([]);
    expect(so.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    expect(all(objs(), 'HorizontalPodAutoscaler'), 'KEDA creates the HPA itself').toEqual([]);
    const baseMetrics = BASE_HPA.spec.metrics as Obj[];
    const cpu = (so.spec.triggers as Obj[]).find((t) => t.type === 'cpu')!;
    expect(cpu.metricType).toBe('Utilization');
    expect(Number(cpu.metadata.value)).toBe(baseMetrics.find((m) => m.type === 'Resource')!.resource.target.averageUtilization);
    const prometheus = (so.spec.triggers as Obj[]).find((t) => t.type === 'prometheus')!;
    expect(prometheus.metricType).toBe('AverageValue');
    expect(prometheus.metadata.threshold).toBe(baseMetrics.find((m) => m.type === 'Pods')!.pods.target.averageValue);
    // One namespace's pods only: another environment's connections must not scale this one.
    const selector = /^sum\(signaling_connections\{(.*)\}\)$/.exec(prometheus.metadata.query)?.[1];
    expect(selector?.split(',').sort()).toEqual(['job="signaling"', `namespace="${expected.namespace}"`]);
    expect(so.spec.advanced.horizontalPodAutoscalerConfig.behavior).toEqual(BASE_HPA.spec.behavior);
  });
});

describe('the ingress component on prod', () => {
  const objs = () => rendered.prodWithIngress;

  it('adds one valid Ingress in the namespace and changes nothing else but the config', () => {
    const ingress = one(objs(), 'Ingress', 'signaling');
    new Ingress(ingress as never).validate();
    const problems: string[] = [];
    unknownFields(ingress, 'V1Ingress', 'Ingress/signaling', problems);
    expect(problems).toEqual([]);
    expect(ingress.metadata.namespace).toBe('signaling-prod');
    const kinds = (list: Obj[]) => list.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, '')}`);
    expect(kinds(objs()).filter((k) => k !== 'Ingress/signaling')).toEqual(kinds(rendered.prod));
  });

  it('routes only the WebSocket to the Service, over TLS from the signaling-tls Secret (cert-manager or kubectl)', () => {
    const ingress = one(objs(), 'Ingress', 'signaling');
    const service = one(objs(), 'Service', 'signaling');
    const paths = (ingress.spec.rules as Obj[]).flatMap((r) => r.http.paths as Obj[]);
    expect(paths.map((p) => [p.path, p.pathType])).toEqual([['/ws', 'Exact']]);
    expect(paths[0]!.backend.service).toEqual({ name: service.metadata.name, port: { name: service.spec.ports[0].name } });
    const hosts = (ingress.spec.rules as Obj[]).map((r) => r.host);
    expect(ingress.spec.tls).toEqual([{ hosts, secretName: 'signaling-tls' }]);
    expect(ingress.metadata.annotations['cert-manager.io/cluster-issuer']).toBeTruthy();
    const docs = readFileSync(join(ROOT, 'docs', 'deployment.md'), 'utf8');
    expect(docs).toContain('create secret tls signaling-tls');
    expect(docs).toContain('k8s/components/ingress');
  });

  it('keeps WebSockets open past the idle timeout and asks for no session affinity', () => {
    const ingress = one(objs(), 'Ingress', 'signaling');
    const { config } = signaling(objs());
    const annotations = ingress.metadata.annotations as Record<string, string>;
    for (const name of ['proxy-read-timeout', 'proxy-send-timeout'])
      expect(Number(annotations[`nginx.ingress.kubernetes.io/${name}`]) * 1000).toBeGreaterThan(Number(config.IDLE_TIMEOUT_MS));
    expect(Object.keys(annotations).filter((a) => /affinity|session-cookie/.test(a))).toEqual([]);
    expect(one(objs(), 'Service', 'signaling').spec.sessionAffinity).toBe('None');
  });

  it('sets ALLOWED_ORIGINS to origins with a scheme and TRUSTED_PROXIES to CIDRs', () => {
    const { config } = signaling(objs());
    for (const origin of config.ALLOWED_ORIGINS!.split(',')) expect(new URL(origin).origin).toBe(origin);
    for (const cidr of config.TRUSTED_PROXIES!.split(',')) expect(cidr).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    expect(signaling(rendered.prod).config.TRUSTED_PROXIES).toBeUndefined();
  });
});

describe('across overlays', () => {
  it('differ in namespace, size, log level, bounds and backing services', () => {
    const namespaces = OVERLAYS.map((o) => one(rendered[o], 'Namespace').metadata.name);
    expect(new Set(namespaces).size).toBe(3);
    const memory = OVERLAYS.map((o) => bytes(signaling(rendered[o]).container.resources.requests.memory));
    expect(memory[0]).toBeLessThan(memory[1]!);
    expect(memory[1]).toBeLessThan(memory[2]!);
    const maxReplicas = OVERLAYS.map((o) => scaling(rendered[o]).max);
    expect(maxReplicas).toEqual([...maxReplicas].sort((a, b) => a - b));
  });

  it('prod spreads pods over zones (hard) and nodes (soft); dev and staging leave it to the scheduler', () => {
    const { pod, deployment } = signaling(rendered.prod);
    const byKey = new Map(((pod.topologySpreadConstraints ?? []) as Obj[]).map((c) => [c.topologyKey as string, c]));
    for (const key of ['topology.kubernetes.io/zone', 'kubernetes.io/hostname']) {
      const c = byKey.get(key);
      expect(c, key).toBeDefined();
      expect(c!.maxSkew).toBe(1);
      expect(labelsMatch(c!.labelSelector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
      expect(c!.matchLabelKeys).toEqual(['pod-template-hash']);
    }
    expect(byKey.get('topology.kubernetes.io/zone')!.whenUnsatisfiable).toBe('DoNotSchedule');
    expect(byKey.get('kubernetes.io/hostname')!.whenUnsatisfiable).toBe('ScheduleAnyway');
    for (const overlay of ['dev', 'staging'] as const)
      expect(signaling(rendered[overlay]).pod.topologySpreadConstraints).toBeUndefined();
  });

  it('prod refuses to start without a JWT secret; dev and staging may run anonymously', () => {
    const optional = (o: Overlay) => signaling(rendered[o]).env.get('AUTH_JWT_SECRET')?.valueFrom.secretKeyRef.optional ?? false;
    expect(optional('prod')).toBe(false);
    expect(optional('dev')).toBe(true);
  });

  it('dev generates consistent throwaway credentials: the URLs carry the passwords the datastores use', () => {
    const objs = rendered.dev;
    const data = (prefix: string) => {
      const secret = all(objs, 'Secret').find((s) => String(s.metadata.name).startsWith(`${prefix}-`))!;
      return Object.fromEntries(
        Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      );
    };
    const urls = data('signaling-secrets');
    const database = new URL(urls['database-url']!);
    const redis = new URL(urls['redis-url']!);
    expect(decodeURIComponent(database.password)).toBe(data('signaling-postgres').password);
    expect(decodeURIComponent(redis.password)).toBe(data('signaling-redis').password);
    expect(database.hostname).toBe(one(objs, 'Service', 'postgres').metadata.name);
    expect(redis.hostname).toBe(one(objs, 'Service', 'redis').metadata.name);
    expect(Number(database.port)).toBe(one(objs, 'Service', 'postgres').spec.ports[0].port);
    // Placeholders, recognisably not real credentials.
    expect(data('signaling-postgres').password).toMatch(/^dev-only-/);
  });

  it('docs/deployment.md creates each Secret once per environment', () => {
    const docs = readFileSync(join(ROOT, 'docs', 'deployment.md'), 'utf8');
    for (const section of ['## 5. Staging', '## 6. Prod']) {
      const start = docs.indexOf(section);
      const text = docs.slice(start, docs.indexOf('\n## ', start + 1));
      const created = [...text.matchAll(/kubectl create secret generic (\S+) -n "\$NS"(?![^\n]*--dry-run)/g)].map((m) => m[1]);
      expect(created.length, section).toBeGreaterThan(0);
      expect(new Set(created).size, `${section}: ${created.join(', ')}`).toBe(created.length);
    }
  });

  it('docs/deployment.md tells the operator how to create every Secret staging and prod expect', () => {
    const docs = readFileSync(join(ROOT, 'docs', 'deployment.md'), 'utf8');
    for (const overlay of ['staging', 'prod'] as const) {
      for (const { spec } of podTemplates(rendered[overlay])) {
        for (const c of spec.containers as Obj[]) {
          for (const ref of ((c.env ?? []) as Obj[]).map((e) => e.valueFrom?.secretKeyRef).filter(Boolean) as Obj[]) {
            expect(docs).toContain(`kubectl create secret generic ${ref.name}`);
            expect(docs).toContain(`--from-literal=${ref.key}=`);
          }
        }
      }
    }
  });
});

function bytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (!m) throw new Error(`unsupported quantity ${quantity}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}
