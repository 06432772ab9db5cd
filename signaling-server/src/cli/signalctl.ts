#!/usr/bin/env node
// signalctl: the operator's command line. It talks to any node's /v1 API (SIGNALCTL_URL and
// SIGNALCTL_KEY, or --url and --key) and, where a kubeconfig is present, to Kubernetes for pods,
// the autoscaler and pod drains. Tables for people, --json for scripts, one line on stderr on error.
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { USAGE as JOIN_TOKEN_USAGE, mintJoinToken } from './mint-token.js';
import { hasKubernetes, KubeStatus, type KubeTarget } from './kube-status.js';
import { CliError, OperatorClient } from './operator-client.js';
import { ago, formatTable } from './table.js';

const USAGE = `usage: signalctl <command> [options]

commands:
  status                         pods (Kubernetes), autoscaler, and every node's load
  rooms                          every room with participants
  room <room>                    one room: state and participants with their node
  kick <room> <participant>      remove a participant (--reason TEXT)
  close <room>                   remove everyone from a room (--reason TEXT)
  send <room> <json>             a server message to the room, or --to ID,ID
  drain <pod|node>               drain one node gracefully (Kubernetes: deletes the pod)
  token --admin read|write       an admin token for the API (needs AUTH_JWT_SECRET)
  token --room R --sub S ...     a join token (${JOIN_TOKEN_USAGE.replace('usage: token ', '')})

options:
  --url URL       a node (SIGNALCTL_URL)          --key KEY        API key or admin token (SIGNALCTL_KEY)
  --json          machine-readable output         --timeout MS     per request (default 10000)
  --namespace NS  --context CTX  --kubeconfig F   --selector SEL   --hpa NAME (default signaling)`;

const DEFAULT_SELECTOR = 'app.kubernetes.io/name=signaling,app.kubernetes.io/component=server';

interface Options {
  url?: string;
  key?: string;
  json: boolean;
  reason?: string;
  to?: string;
  kube: KubeTarget;
}

type Out = (text: string) => void;

async function main(argv: string[], env: NodeJS.ProcessEnv, out: Out): Promise<void> {
  const command = argv[0];
  if (command === undefined) throw new UsageError(USAGE);
  if (command === 'help' || command === '--help') return out(USAGE);
  if (command === 'token') return out(await token(argv.slice(1), env));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv.slice(1),
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: 'string' },
        key: { type: 'string' },
        json: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '10000' },
        reason: { type: 'string' },
        to: { type: 'string' },
        namespace: { type: 'string' },
        context: { type: 'string' },
        kubeconfig: { type: 'string' },
        selector: { type: 'string', default: DEFAULT_SELECTOR },
        hpa: { type: 'string', default: 'signaling' },
      },
    });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  const o: Options = {
    url: v.url ?? nonEmpty(env.SIGNALCTL_URL),
    key: v.key ?? nonEmpty(env.SIGNALCTL_KEY),
    json: v.json,
    reason: v.reason,
    to: v.to,
    kube: { kubeconfig: v.kubeconfig, context: v.context, namespace: v.namespace, selector: v.selector, hpa: v.hpa },
  };
  const timeoutMs = Number(v.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new CliError('--timeout must be a positive number of milliseconds');
  const api = new OperatorClient({ url: o.url, key: o.key, timeoutMs });
  const arg = (i: number, name: string) => {
    const value = positionals[i];
    if (value === undefined) throw new CliError(`${command} needs <${name}>`);
    return encodeURIComponent(value);
  };
  const print = (data: unknown, human: () => string) => out(o.json ? JSON.stringify(data, null, 2) : human());

  switch (command) {
    case 'status':
      return status(api, o, env, print);
    case 'rooms': {
      const rooms: any[] = [];
      let cursor: string | null = null;
      do {
        const page: { rooms: any[]; nextCursor: string | null } = await api.call(
          'GET',
          `/v1/rooms?limit=500${cursor ? `&cursor=${cursor}` : ''}`,
        );
        rooms.push(...page.rooms);
        cursor = page.nextCursor;
      } while (cursor);
      return print({ rooms }, () =>
        rooms.length === 0
          ? 'no rooms with participants'
          : formatTable(
              ['ROOM', 'PARTICIPANTS', 'STATE', 'UPDATED'],
              rooms.map((r) => [r.name, r.participants, `v${r.version}`, ago(r.updatedAt)]),
            ),
      );
    }
    case 'room': {
      const detail = await api.call('GET', `/v1/rooms/${arg(0, 'room')}`);
      return print(detail, () =>
        [
          `room ${detail.room.name}: ${detail.participants.length} participant(s), state v${detail.state.version}`,
          `state: ${JSON.stringify(detail.state.data)}`,
          '',
          formatTable(
            ['PARTICIPANT', 'NAME', 'IDENTITY', 'ACCESS', 'NODE', 'STATUS', 'JOINED'],
            detail.participants.map((p: any) => [
              p.id,
              p.name || '-',
              p.identity ?? '-',
              p.source === null ? '-' : `${p.source}:${p.grants.join(',') || 'none'}`,
              p.node,
              p.status,
              ago(p.joinedAt),
            ]),
          ),
        ].join('\n'),
      );
    }
    case 'kick': {
      const room = arg(0, 'room');
      const id = arg(1, 'participant');
      const result = await api.call('DELETE', `/v1/rooms/${room}/participants/${id}`, { reason: o.reason });
      return print(result, () => `removed ${positionals[1]} from ${positionals[0]}`);
    }
    case 'close': {
      const result = await api.call('POST', `/v1/rooms/${arg(0, 'room')}/close`, { reason: o.reason });
      return print(result, () => `closed ${positionals[0]}: removed ${result.removed} participant(s)`);
    }
    case 'send': {
      const room = arg(0, 'room');
      const text = positionals[1];
      if (text === undefined) throw new CliError('send needs <json> (the message data, e.g. \'{"notice":"restarting"}\')');
      let data: unknown;
      try {
        data = JSON.parse(text);
      } catch {
        throw new CliError('the message data is not JSON (quote strings: \'"hello"\')');
      }
      const to = o.to?.split(',').filter((id) => id !== '');
      const result = await api.call('POST', `/v1/rooms/${room}/send`, { data, to });
      return print(result, () =>
        result.sent === null
          ? `sent to room ${positionals[0]}`
          : `sent to ${result.sent.length} participant(s)${result.notFound.length ? `; not in the room: ${result.notFound.join(', ')}` : ''}`,
      );
    }
    case 'drain':
      return drain(positionals[0], api, o, env, print);
    default:
      throw new CliError(`unknown command "${command}"; try signalctl help`);
  }
}

async function status(api: OperatorClient, o: Options, env: NodeJS.ProcessEnv, print: (d: unknown, h: () => string) => void) {
  const isKube = hasKubernetes(o.kube, env);
  if (!isKube && !api.hasUrl) {
    throw new CliError(
      'no cluster found: set KUBECONFIG (or --kubeconfig) for Kubernetes, or SIGNALCTL_URL (or --url) for a node',
    );
  }
  const kube = isKube ? await KubeStatus.connect(o.kube) : null;
  const [pods, hpa, cluster] = await Promise.all([
    kube?.pods() ?? null,
    kube?.hpa() ?? null,
    // Dead nodes too (as long as the database keeps them, NODE_RETENTION_MS): one that vanished is
    // exactly what an operator looks for.
    api.hasUrl ? api.call('GET', '/v1/cluster?dead=true') : null,
  ]);
  const nodes: any[] = cluster?.nodes ?? [];
  const nodeOf = new Map(nodes.map((n) => [n.id, n]));
  print({ namespace: kube?.namespace ?? null, pods, hpa, nodes: cluster ? nodes : null }, () => {
    const lines: string[] = [];
    if (hpa)
      lines.push(`autoscaler ${hpa.name}: ${hpa.current} current, ${hpa.desired} desired (min ${hpa.min}, max ${hpa.max})`);
    else if (kube) lines.push(`no autoscaler "${o.kube.hpa}" in namespace ${kube.namespace}`);
    // Pods and nodes are one row each where the pod name is the node id (the manifests set NODE_ID so).
    // Live first, the dead after them.
    const isDead = (name: string) => nodeOf.get(name)?.status === 'dead';
    const names = [...new Set([...(pods ?? []).map((p) => p.name), ...nodes.map((n) => n.id)])].sort(
      (x, y) => Number(isDead(x)) - Number(isDead(y)) || x.localeCompare(y),
    );
    const rows = names.map((name) => {
      const pod = pods?.find((p) => p.name === name);
      const node = nodeOf.get(name);
      const podState = pod ? (pod.isTerminating ? 'Terminating' : pod.phase) : null;
      return [
        name,
        pod ? (pod.isReady ? 'yes' : 'no') : null,
        pod?.restarts,
        podState,
        node?.id,
        node?.status,
        node?.connections,
        node?.participants,
        node ? `${Math.round(node.heartbeatAgeMs / 100) / 10}s` : null,
      ];
    });
    lines.push(
      formatTable(['NAME', 'READY', 'RESTARTS', 'POD', 'NODE', 'STATUS', 'CONNECTIONS', 'PARTICIPANTS', 'HEARTBEAT'], rows),
    );
    if (!cluster) lines.push("(set SIGNALCTL_URL and SIGNALCTL_KEY to see each node's connections)");
    return lines.join('\n');
  });
}

async function drain(
  name: string | undefined,
  api: OperatorClient,
  o: Options,
  env: NodeJS.ProcessEnv,
  print: (d: unknown, h: () => string) => void,
) {
  if (!name) throw new CliError('drain needs <pod|node>');
  if (hasKubernetes(o.kube, env)) {
    const kube = await KubeStatus.connect(o.kube);
    await kube.deletePod(name);
    return print(
      { pod: name, deleted: true },
      () => `pod ${name} is draining: its clients move to the other pods, then the Deployment replaces it`,
    );
  }
  const result = await api.call('POST', `/v1/cluster/nodes/${encodeURIComponent(name)}/drain`);
  return print(result, () => `node ${name} is draining: its clients move to the other nodes, then it exits`);
}

/** `token --admin read|write [--sub S] [--ttl SEC]`, or a join token (the same as `npm run token`). */
async function token(argv: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const adminAt = argv.indexOf('--admin');
  if (adminAt < 0) return mintJoinToken(argv, env);
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      admin: { type: 'string' },
      sub: { type: 'string', default: 'operator' },
      ttl: { type: 'string', default: '3600' },
    },
  });
  if (values.admin !== 'read' && values.admin !== 'write') throw new CliError('--admin must be read or write');
  const secret = nonEmpty(env.AUTH_JWT_SECRET);
  if (!secret) throw new CliError('AUTH_JWT_SECRET is not set; it must be the secret the nodes verify tokens with');
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new CliError('--ttl must be a positive number of seconds');
  return new SignJWT({ grants: [`admin:${values.admin}`] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(values.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(new TextEncoder().encode(secret));
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** The command line itself is wrong: the usage goes to stderr and signalctl exits 2. */
class UsageError extends Error {}

main(process.argv.slice(2), process.env, (text) => process.stdout.write(`${text}\n`)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`${err.message}\n`);
    process.exitCode = 2;
    return;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`signalctl: ${message.split('\n')[0]}\n`);
  process.exitCode = 1;
});
