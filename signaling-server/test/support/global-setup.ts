// Runs once per `vitest run`: installs the Debian packages whose programs some tests start, finds
// Postgres and Redis and hands their URLs to the test files.
import type { TestProject } from 'vitest/node';
import { findBackends } from './backends.js';
import { installMissingSystemPackages } from './system-packages.js';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
    /** Seeds of the Redis Cluster that startNode() gives nodes instead of redisUrl; '' for none. */
    redisClusterNodes: string;
  }
}

export default async function setup(project: TestProject) {
  await installMissingSystemPackages();
  const backends = await findBackends();
  project.provide('databaseUrl', backends.databaseUrl);
  project.provide('redisUrl', backends.redisUrl);
  project.provide('redisClusterNodes', '');
  return () => backends.stop();
}
