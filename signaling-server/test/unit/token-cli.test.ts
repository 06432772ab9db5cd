import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/token-verifier.js';

const SECRET = 'cli-test-secret-0123456789abcdef0123456789';
const verifier = createTokenVerifier({ secret: SECRET }) as TokenVerifier;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], secret: string | undefined): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.AUTH_JWT_SECRET;
  if (secret !== undefined) env.AUTH_JWT_SECRET = secret;
  return new Promise((resolve) => {
    execFile('npx', ['tsx', 'signaling-server/src/cli/token.ts', ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('token CLI', () => {
  it('prints only a token that the server verifies, with the requested claims', async () => {
    const before = Math.floor(Date.now() / 1000);
    const run = await runCli(
      ['--room', 'lobby', '--sub', 'alice', '--name', 'Alice', '--grants', 'signal,broadcast', '--ttl', '120'],
      SECRET,
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const claims = await verifier.verify(run.stdout.trim());
    expect(claims).toMatchObject({ sub: 'alice', room: 'lobby', name: 'Alice' });
    expect([...claims.grants].sort()).toEqual(['broadcast', 'signal']);
    expect(claims.exp).toBeGreaterThanOrEqual(before + 120);
    expect(claims.exp).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 120);
  });

  it('defaults to all grants and a one-hour lifetime', async () => {
    const run = await runCli(['--room', '*', '--sub', 'bob'], SECRET);
    expect(run.code).toBe(0);
    const claims = await verifier.verify(run.stdout.trim());
    expect(claims.room).toBe('*');
    expect(claims.grants.size).toBe(3);
    expect(claims.exp - Math.floor(Date.now() / 1000)).toBeGreaterThan(3500);
  });

  it('exits 1 with a message on stderr and nothing on stdout when AUTH_JWT_SECRET is unset', async () => {
    const run = await runCli(['--room', 'lobby', '--sub', 'alice'], undefined);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/AUTH_JWT_SECRET is not set/);
  });

  it('exits 1 instead of minting a token the server would refuse', async () => {
    const run = await runCli(['--room', 'lobby', '--sub', 'alice', '--grants', 'signal,admin'], SECRET);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/--grants/);
  });
});
