// Profiles server processes over one measured window through the V8 inspector (the nodes run with
// --inspect=127.0.0.1:0): the same .cpuprofile that `node --cpu-prof` writes, but without start-up,
// connection setup and shutdown in it, so it shows what the steady load costs.
import WebSocket from 'ws';
import type { NodeProcess } from './node-process.js';

interface Inspector {
  call(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
}

function connectInspector(url: string, timeoutMs = 5_000): Promise<Inspector> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1024 * 2 ** 20 });
    let nextId = 1;
    const pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`inspector ${url}: no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      const p = msg.id === undefined ? undefined : pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id!);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result ?? {});
    });
    ws.on('close', () => {
      for (const p of pending.values()) p.reject(new Error('inspector closed'));
      pending.clear();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.once('open', () => {
      clearTimeout(timer);
      resolve({
        call: (method, params = {}) =>
          new Promise((res, rej) => {
            const id = nextId++;
            pending.set(id, { resolve: res, reject: rej });
            ws.send(JSON.stringify({ id, method, params }));
          }),
        close: () => ws.close(),
      });
    });
  });
}

export interface WindowProfile {
  node: string;
  profile: unknown;
}

export interface RunningProfiles {
  stop(): Promise<WindowProfile[]>;
}

/** Starts sampling every node's main thread (1 ms interval); `stop` returns one profile each. */
export async function startWindowProfiles(nodes: NodeProcess[]): Promise<RunningProfiles> {
  const sessions = await Promise.all(
    nodes.map(async (n) => {
      const url = await Promise.race([
        n.inspectorUrl,
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${n.name}: no inspector`)), 5_000)),
      ]);
      const inspector = await connectInspector(url);
      await inspector.call('Profiler.enable');
      await inspector.call('Profiler.setSamplingInterval', { interval: 1000 });
      await inspector.call('Profiler.start');
      return { node: n.name, inspector };
    }),
  );
  return {
    async stop() {
      return Promise.all(
        sessions.map(async ({ node, inspector }) => {
          try {
            const { profile } = await inspector.call('Profiler.stop');
            await inspector.call('Profiler.disable');
            return { node, profile };
          } finally {
            inspector.close();
          }
        }),
      );
    },
  };
}
