// The Docker engine and the compose tool as the container tests drive them: commands with their
// output, the compose command this machine has (the v2 plugin, or Debian's docker-compose v1), and
// a bounded wait for states Docker reports only when asked (health, Prometheus targets).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export async function run(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
) {
  try {
    const { stdout } = await execFileAsync(command, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 64 << 20,
    });
    return stdout.trim();
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}`);
  }
}

export const docker = (args: string[], timeoutMs?: number) => run('docker', args, { timeoutMs });

let composeArgv: Promise<string[]> | undefined;
/** `docker compose` where the v2 plugin is installed, else `docker-compose` (v1). */
export function composeCommand(): Promise<string[]> {
  composeArgv ??= run('docker', ['compose', 'version']).then(
    () => ['docker', 'compose'],
    () => ['docker-compose'],
  );
  return composeArgv;
}

export async function compose(
  project: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd: string; timeoutMs?: number },
) {
  const [command, ...rest] = await composeCommand();
  return run(command!, [...rest, '-p', project, ...args], opts);
}

/** Polls `check` until it returns a value other than undefined; throws with the last state after timeoutMs. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export async function healthOf(container: string): Promise<string> {
  return docker(['inspect', '-f', '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}', container]);
}
