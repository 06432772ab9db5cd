// Ends every run with one plain line, "Tests: N passed, N failed[, N skipped]", that CI and people
// can read without knowing vitest's own summary format. A test file can fail with no failed test in
// it: at import (nothing collected), in beforeAll (its tests are skipped) or in afterAll (they
// passed). Each such file counts as one failure in that line, as does each error outside any test,
// so the line never says "0 failed" for a failed run. The line before it counts the files, worded
// so that it is not read as the closing line.
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    let failedFiles = 0;
    for (const module of testModules) {
      let failedTests = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedTests++;
        else skipped++;
      }
      if (module.state() === 'failed') {
        failedFiles++;
        if (failedTests === 0) failed++;
      }
      failed += failedTests;
    }
    process.stdout.write(
      `\nTest files failed: ${failedFiles} of ${testModules.length}\n` +
        `Tests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`,
    );
  }
}
