// The logger batches its writes to stdout: lines must still come out promptly while the process
// runs, and all of them when it exits.
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const logModule = fileURLToPath(new URL('../../src/log.ts', import.meta.url));

/** Runs `body` in a child node with `log` in scope; resolves with the parsed lines it printed. */
function runLogging(body: string, onLine?: (line: Record<string, unknown>, child: ReturnType<typeof spawn>) => void) {
  const script = `const { createLogger } = await import(${JSON.stringify(logModule)}); const log = createLogger('info', 'n1'); ${body}`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  let rest = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    for (const part of parts) {
      const line = JSON.parse(part) as Record<string, unknown>;
      lines.push(line);
      onLine?.(line, child);
    }
  });
  return new Promise<Record<string, unknown>[]>((resolve) => child.once('close', () => resolve(lines)));
}

it('writes every line logged before process.exit', async () => {
  const lines = await runLogging(`for (let i = 0; i < 1000; i++) log.info({ i }, 'line'); process.exit(0);`);
  expect(lines.map((l) => l.i)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  expect(lines.every((l) => l.node === 'n1')).toBe(true);
});

it('writes a lone line while the process goes on running', async () => {
  // The child keeps running until the line has reached the parent; the test times out otherwise.
  const lines = await runLogging(`log.info('alone'); setInterval(() => {}, 1000);`, (line, child) => {
    if (line.msg === 'alone') child.kill();
  });
  expect(lines.map((l) => l.msg)).toEqual(['alone']);
});

it('goes on running when stdout fails', async () => {
  // /dev/full refuses every write with ENOSPC; the child reports on stderr whether it got past them.
  const script = `const { createLogger } = await import(${JSON.stringify(logModule)}); const log = createLogger('info', 'n1');
    for (let i = 0; i < 1000; i++) log.info({ i }, 'line'); process.stderr.write('survived');`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', openSync('/dev/full', 'w'), 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  expect(stderr).toBe('survived');
  expect(code).toBe(0);
});
