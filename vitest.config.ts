import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['signaling-server/test/**/*.test.ts', 'client/test/**/*.test.ts', 'load-tests/test/**/*.test.ts'],
    // Run by `npm run test:containers` (vitest.containers.config.ts): they need a Docker engine.
    exclude: [
      ...configDefaults.exclude,
      'signaling-server/test/containers/**',
      // Run by `npm run test:redis-cluster` (vitest.redis-cluster.config.ts): they kill Redis Cluster masters.
      'signaling-server/test/integration/redis-cluster-bus.test.ts',
      'signaling-server/test/cluster/redis-cluster-failover.test.ts',
    ],
    globalSetup: ['signaling-server/test/support/global-setup.ts'],
    reporters: ['default', './signaling-server/test/support/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Cluster tests spawn several node processes each and some assert timing budgets (three
    // heartbeat periods, the drain timeout): on a 2-core machine they run one file at a time.
    fileParallelism: false,
  },
});
