// The global setup of `npm run test:redis-cluster`: the usual Postgres and Redis, and a local Redis
// Cluster (3 masters, 3 replicas) that startNode() hands to the nodes instead of the shared Redis.
import type { TestProject } from 'vitest/node';
import setupBackends from './global-setup.js';
import { startRedisCluster } from './redis-cluster.js';

export default async function setup(project: TestProject) {
  const stopBackends = await setupBackends(project);
  try {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    project.provide('redisClusterNodes', cluster.seeds.join(','));
    return async () => {
      await cluster.stop();
      await stopBackends();
    };
  } catch (err) {
    await stopBackends();
    throw err;
  }
}
