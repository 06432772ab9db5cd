import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// `npm run test:redis-cluster`: the multi-process cluster tests once more, with the nodes on a local
// Redis Cluster (3 masters, 3 replicas; sharded pub/sub) instead of one Redis, and the bus tests
// that kill a cluster master. Every cluster test file runs here except those that set up a Redis
// of their own to break it, which a cluster cannot stand in for, and the one with no Redis at all:
// - bus-flood.test.ts: a private Redis whose output-buffer limit cuts the subscribers;
// - delivery.test.ts: private Redis servers whose subscriber connections it kills (CLIENT KILL),
//   in the same file as its tests on the shared Redis; redis-cluster-failover.test.ts covers
//   acked delivery across a killed master here;
// - faults.test.ts: stops and restarts a private Redis under running nodes;
// - postgres-faults.test.ts: a private Redis it makes hang (CLIENT PAUSE);
// - partitions.test.ts: puts a black-hole proxy between some nodes and one Redis;
// - presence.test.ts: a private Redis with ACL users and paused clients;
// - embedded.test.ts: runs without any Redis, the same here as in `npm test`.
export default defineConfig({
  test: {
    ...base.test,
    include: ['signaling-server/test/cluster/*.test.ts', 'signaling-server/test/integration/redis-cluster-bus.test.ts'],
    exclude: [
      ...configDefaults.exclude,
      'signaling-server/test/cluster/bus-flood.test.ts',
      'signaling-server/test/cluster/delivery.test.ts',
      'signaling-server/test/cluster/faults.test.ts',
      'signaling-server/test/cluster/postgres-faults.test.ts',
      'signaling-server/test/cluster/partitions.test.ts',
      'signaling-server/test/cluster/presence.test.ts',
      'signaling-server/test/cluster/embedded.test.ts',
    ],
    globalSetup: ['signaling-server/test/support/global-setup-redis-cluster.ts'],
  },
});
