// Ends every run with one plain line that CI and people can read without knowing vitest's own
// summary format: "Tests: N passed, N failed[, N skipped]; test files: N of N failed[; N errors
// outside tests]". Files are counted apart from tests because a file can fail with no failed test:
// at import (nothing collected), in beforeAll (its tests are skipped) or in afterAll (they passed).
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    const tests = { passed: 0, failed: 0, skipped: 0 };
    let failedFiles = 0;
    for (const module of testModules) {
      if (module.state() === 'failed') failedFiles++;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') tests.passed++;
        else if (state === 'failed') tests.failed++;
        else tests.skipped++;
      }
    }
    const skipped = tests.skipped > 0 ? `, ${tests.skipped} skipped` : '';
    const outside = unhandledErrors.length > 0 ? `; ${unhandledErrors.length} errors outside tests` : '';
    process.stdout.write(
      `\nTests: ${tests.passed} passed, ${tests.failed} failed${skipped}; test files: ${failedFiles} of ${testModules.length} failed${outside}\n`,
    );
  }
}
