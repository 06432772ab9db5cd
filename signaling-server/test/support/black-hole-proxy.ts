// A TCP proxy in front of one server (Redis, Postgres) that fails the way real networks do: without
// a FIN or an RST. Tests put it between a node and its dependency and switch its mode:
// - `pass`: bytes flow both ways (what was held flows on);
// - `hold`: nothing is forwarded, on old flows or new ones, and the bytes are kept (a paused VM, a
//   switch queueing): `pass` releases them, in order;
// - `forget`: every flow open now is dead for good, as when a NAT or a load balancer forgets its
//   flows: what either end sends is dropped (held bytes too), neither end hears a FIN or an RST;
//   connections opened after it pass;
// - `reset`: every flow open now is cut with an RST, and so is each new one until the mode changes.
// Both ends' sockets are half-open aware, so an end that closes its side is not answered by the
// proxy on the peer's behalf (a dead path carries no FIN back either).
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'hold' | 'forget' | 'reset';

export interface BlackHoleProxy {
  /** The loopback port clients connect to. */
  port: number;
  mode: ProxyMode;
  setMode(mode: ProxyMode): void;
  /** Connections accepted so far (a client that reconnects shows up here). */
  accepted: number;
  /** Flows open now whose bytes still go somewhere (not forgotten, not reset). */
  liveFlows(): number;
  stop(): Promise<void>;
}

/** One client connection and its upstream connection, and what is held in each direction. */
interface Flow {
  client: Socket;
  upstream: Socket;
  isDead: boolean;
  /** Bytes from the client for the upstream, held while the mode is `hold`. */
  toUpstream: Buffer[];
  /** Bytes from the upstream for the client, held while the mode is `hold`. */
  toClient: Buffer[];
}

export async function startBlackHoleProxy(target: { host: string; port: number }): Promise<BlackHoleProxy> {
  const flows = new Set<Flow>();
  const release = (flow: Flow) => {
    if (flow.isDead) return;
    for (const chunk of flow.toUpstream.splice(0)) flow.upstream.write(chunk);
    for (const chunk of flow.toClient.splice(0)) flow.client.write(chunk);
  };
  const forward = (flow: Flow, chunk: Buffer, to: Socket, held: Buffer[]) => {
    if (flow.isDead) return;
    if (proxy.mode === 'hold') held.push(chunk);
    else to.write(chunk);
  };
  const close = (flow: Flow) => {
    flows.delete(flow);
    flow.client.destroy();
    flow.upstream.destroy();
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    proxy.accepted++;
    if (proxy.mode === 'reset') {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const flow: Flow = { client, upstream, isDead: false, toUpstream: [], toClient: [] };
    flows.add(flow);
    client.on('data', (chunk: Buffer) => forward(flow, chunk, upstream, flow.toUpstream));
    upstream.on('data', (chunk: Buffer) => forward(flow, chunk, client, flow.toClient));
    // A live flow passes a close on; a dead one keeps the other end waiting, as a dead path does.
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on('error', () => {});
      from.on('end', () => {
        if (!flow.isDead && proxy.mode !== 'hold') to.end();
      });
      from.on('close', () => {
        if (!flow.isDead) close(flow);
      });
    }
  });

  const proxy: BlackHoleProxy = {
    port: 0,
    mode: 'pass',
    accepted: 0,
    setMode(mode) {
      proxy.mode = mode;
      if (mode === 'pass') for (const flow of flows) release(flow);
      if (mode === 'forget') {
        for (const flow of flows) {
          flow.isDead = true;
          flow.toUpstream = [];
          flow.toClient = [];
        }
        // From now on new connections pass: the forgotten flows stay open, and silent, forever.
        proxy.mode = 'pass';
      }
      if (mode === 'reset') {
        for (const flow of flows) {
          flows.delete(flow);
          flow.client.resetAndDestroy();
          flow.upstream.resetAndDestroy();
        }
      }
    },
    liveFlows: () => [...flows].filter((flow) => !flow.isDead).length,
    async stop() {
      for (const flow of flows) close(flow);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  proxy.port = (server.address() as AddressInfo).port;
  return proxy;
}
