// `npm run test:containers`: the image built and run, compose brought up and driven. Needs root
// and a Docker engine (started if absent); not part of `npm test`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['signaling-server/test/containers/**/*.test.ts'],
    globalSetup: ['signaling-server/test/support/local-images.ts'],
    reporters: ['default', './signaling-server/test/support/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
