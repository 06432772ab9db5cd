// Finds the Postgres and Redis the tests run against, in this order: DATABASE_URL / REDIS_URL from
// the environment; servers on their default local ports; containers via testcontainers where a
// Docker engine runs. TEST_SERVERS=containers skips the first two, so both come from containers
// (images POSTGRES_IMAGE and REDIS_IMAGE, which must exist locally where no registry is reachable).
// Used by the global setup, which hands the URLs to every test file.
import { connect } from 'node:net';

export interface Backends {
  databaseUrl: string;
  redisUrl: string;
  stop(): Promise<void>;
}

/** Images testcontainers starts when no server is found (or TEST_SERVERS=containers). */
export const DEFAULT_CONTAINER_IMAGES = { postgres: 'postgres:15-alpine', redis: 'redis:7-alpine' };

function isListening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Containers first, then the network they are on. */
async function stopAll(stops: (() => Promise<unknown>)[]): Promise<void> {
  for (const stop of stops.reverse()) await stop();
}

export async function findBackends(env: NodeJS.ProcessEnv = process.env): Promise<Backends> {
  const servers = env.TEST_SERVERS || 'auto';
  if (servers !== 'auto' && servers !== 'containers')
    throw new Error(`TEST_SERVERS must be "auto" or "containers", not "${servers}"`);
  const isContainersOnly = servers === 'containers';
  let databaseUrl = isContainersOnly ? undefined : env.DATABASE_URL || undefined;
  let redisUrl = isContainersOnly ? undefined : env.REDIS_URL || undefined;
  if (!isContainersOnly && !databaseUrl && (await isListening('127.0.0.1', 5432)))
    databaseUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
  if (!isContainersOnly && !redisUrl && (await isListening('127.0.0.1', 6379))) redisUrl = 'redis://127.0.0.1:6379';
  const stops: (() => Promise<unknown>)[] = [];
  if (!databaseUrl || !redisUrl) {
    try {
      // A network of their own: engines run without the default bridge (as in CI here) publish no
      // ports for containers left on it.
      const { Network } = await import('testcontainers');
      const network = await new Network().start();
      stops.push(() => network.stop());
      if (!databaseUrl) {
        const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
        const pg = await new PostgreSqlContainer(env.POSTGRES_IMAGE || DEFAULT_CONTAINER_IMAGES.postgres)
          .withNetwork(network)
          .start();
        stops.push(() => pg.stop());
        databaseUrl = pg.getConnectionUri();
      }
      if (!redisUrl) {
        const { RedisContainer } = await import('@testcontainers/redis');
        const redis = await new RedisContainer(env.REDIS_IMAGE || DEFAULT_CONTAINER_IMAGES.redis).withNetwork(network).start();
        stops.push(() => redis.stop());
        redisUrl = redis.getConnectionUrl();
      }
    } catch (err) {
      await stopAll(stops);
      throw new Error(
        `tests need Postgres and Redis: set DATABASE_URL and REDIS_URL, or run them locally on 127.0.0.1:5432 and :6379, or run a Docker engine for testcontainers (${(err as Error).message})`,
      );
    }
  }
  return {
    databaseUrl,
    redisUrl,
    stop: () => stopAll(stops),
  };
}
