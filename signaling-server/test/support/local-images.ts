// Global setup of the container tests (vitest.containers.config.ts): makes sure a Docker engine
// runs (deploy/local-images/engine.sh), builds the look-alike images and the project image
// (deploy/local-images/build.sh) and hands their tags to the test files. Says how long each took.
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { run } from './docker.js';

export interface LocalImages {
  NODE_IMAGE: string;
  POSTGRES_IMAGE: string;
  REDIS_IMAGE: string;
  HAPROXY_IMAGE: string;
  PROMETHEUS_IMAGE: string;
  SIGNALING_IMAGE: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    images: LocalImages;
  }
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

async function timed<T>(what: string, step: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await step();
  process.stderr.write(`[containers] ${what}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  return result;
}

export function parseImageVars(text: string): LocalImages {
  const vars = Object.fromEntries(
    text
      .split('\n')
      .map((line) => /^(\w+)=(.+)$/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  ) as Record<string, string>;
  const keys: (keyof LocalImages)[] = [
    'NODE_IMAGE',
    'POSTGRES_IMAGE',
    'REDIS_IMAGE',
    'HAPROXY_IMAGE',
    'PROMETHEUS_IMAGE',
    'SIGNALING_IMAGE',
  ];
  for (const key of keys) if (!vars[key]) throw new Error(`build.sh did not print ${key}`);
  return Object.fromEntries(keys.map((k) => [k, vars[k]])) as unknown as LocalImages;
}

export default async function setup(project: TestProject) {
  await timed('engine ready', () => run('bash', [`${ROOT}deploy/local-images/engine.sh`], { timeoutMs: 600_000 }));
  const printed = await timed('images built', () =>
    run('bash', [`${ROOT}deploy/local-images/build.sh`], { timeoutMs: 1_800_000 }),
  );
  project.provide('images', parseImageVars(printed));
}
