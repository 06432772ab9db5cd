// Runs the built signalctl as an operator would, against a node's API, with a HOME that has no
// ~/.kube so that Kubernetes is only used when a test points at one.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WRITE_KEY } from './operator-api.js';

const CLI = fileURLToPath(new URL('../../dist/cli/signalctl.js', import.meta.url));

export interface SignalctlRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runSignalctl(home: string, url: string, args: string[], env: Record<string, string> = {}): Promise<SignalctlRun> {
  return new Promise((resolve) => {
    const base = { PATH: process.env.PATH ?? '', HOME: home, SIGNALCTL_URL: url, SIGNALCTL_KEY: WRITE_KEY };
    execFile(process.execPath, [CLI, ...args], { env: { ...base, ...env }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}
