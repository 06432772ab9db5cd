// The closing "Tests: N passed, N failed" line is what CI and people read first: a file that failed
// without a failed test (at import, in beforeAll, in afterAll) must show in it.
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

it('counts a file that failed at import, in beforeAll or in afterAll as a failure', async () => {
  const run = await runFixtures();
  expect(run.code).toBe(1);
  // One failed test, and three files that failed with none: each counts once.
  expect(run.stdout.trim().split('\n').slice(-2)).toEqual(['Test files failed: 4 of 5', 'Tests: 2 passed, 4 failed, 2 skipped']);
});
