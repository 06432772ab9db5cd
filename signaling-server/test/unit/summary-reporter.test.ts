// The closing "Tests: …" line is what CI and people read first: a file that failed without a
// failed test (at import, in beforeAll, in afterAll) must show in it.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const FIXTURES = fileURLToPath(new URL('../fixtures/summary-reporter/vitest.config.ts', import.meta.url));
const VITEST = fileURLToPath(new URL('../../../node_modules/vitest/vitest.mjs', import.meta.url));

function runFixtures(): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, NO_COLOR: '1' };
    execFile(process.execPath, [VITEST, 'run', '--config', FIXTURES], { env, timeout: 60_000 }, (error, stdout) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout });
    });
  });
}

it('counts the files that failed at import, in beforeAll or in afterAll, beside the failed tests', async () => {
  const run = await runFixtures();
  expect(run.code).toBe(1);
  expect(run.stdout.trim().split('\n').at(-1)).toBe('Tests: 2 passed, 1 failed, 2 skipped; test files: 4 of 5 failed');
});
