// Starts one server process, waits for its `"msg":"listening"` log line, and stops it.
// Both the project's nodes and the Socket.IO baseline announce themselves this way.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface NodeProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** Base URL for HTTP, e.g. http://127.0.0.1:4321 */
  readonly httpUrl: string;
  /** Full WebSocket URL the clients connect to. */
  readonly wsUrl: string;
  /** The V8 inspector's WebSocket URL when the process was started with --inspect. */
  readonly inspectorUrl: Promise<string>;
  /** Resolves with the exit code once the process is gone. */
  stop(graceMs?: number): Promise<number | null>;
}

export interface StartOptions {
  name: string;
  args: string[];
  env: Record<string, string>;
  logFile: string;
  wsPath: string;
  cwd: string;
  startTimeoutMs?: number;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or interrupted generator must not leave server processes behind.
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export function startNodeProcess(opts: StartOptions): Promise<NodeProcess> {
  installExitHook();
  const log = createWriteStream(opts.logFile);
  const child = spawn(process.execPath, opts.args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    });
  });
  let foundInspector: (url: string) => void = () => undefined;
  const inspectorUrl = new Promise<string>((resolve) => (foundInspector = resolve));
  createInterface({ input: child.stderr }).on('line', (line) => {
    log.write(line + '\n');
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(line);
    if (m) foundInspector(m[1]!);
  });

  return new Promise<NodeProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${opts.name}: no "listening" line within ${opts.startTimeoutMs ?? 30_000} ms (log: ${opts.logFile})`));
    }, opts.startTimeoutMs ?? 30_000);
    let announced = false;
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      log.write(line + '\n');
      if (announced) return;
      let rec: { msg?: unknown; port?: unknown };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.msg !== 'listening' || typeof rec.port !== 'number') return;
      announced = true;
      clearTimeout(timer);
      const port = rec.port;
      resolve({
        name: opts.name,
        pid: child.pid!,
        port,
        httpUrl: `http://127.0.0.1:${port}`,
        wsUrl: `ws://127.0.0.1:${port}${opts.wsPath}`,
        inspectorUrl,
        async stop(graceMs = 10_000) {
          if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          const code = await exited;
          clearTimeout(killer);
          log.end();
          return code;
        },
      });
    });
    void exited.then((code) => {
      if (!announced) {
        clearTimeout(timer);
        reject(new Error(`${opts.name} exited with ${code} before listening (log: ${opts.logFile})`));
      }
    });
  });
}
