// Finds the Postgres and Redis the tests run against, in this order: DATABASE_URL / REDIS_URL from
// the environment; servers on their default local ports; containers via testcontainers where a
// Docker engine runs. Used by the global setup, which hands the URLs to every test file.
import { connect } from 'node:net';

export interface Backends {
  databaseUrl: string;
  redisUrl: string;
  stop(): Promise<void>;
}

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

export async function findBackends(env: NodeJS.ProcessEnv = process.env): Promise<Backends> {
  let databaseUrl = env.DATABASE_URL || undefined;
  let redisUrl = env.REDIS_URL || undefined;
  if (!databaseUrl && (await isListening('127.0.0.1', 5432))) databaseUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
  if (!redisUrl && (await isListening('127.0.0.1', 6379))) redisUrl = 'redis://127.0.0.1:6379';
  const stops: (() => Promise<unknown>)[] = [];
  if (!databaseUrl || !redisUrl) {
    try {
      if (!databaseUrl) {
        const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
        const pg = await new PostgreSqlContainer('postgres:15-alpine').start();
        stops.push(() => pg.stop());
        databaseUrl = pg.getConnectionUri();
      }
      if (!redisUrl) {
        const { RedisContainer } = await import('@testcontainers/redis');
        const redis = await new RedisContainer('redis:7-alpine').start();
        stops.push(() => redis.stop());
        redisUrl = redis.getConnectionUrl();
      }
    } catch {
      throw new Error(
        'tests need Postgres and Redis: set DATABASE_URL and REDIS_URL, or run them locally on 127.0.0.1:5432 and :6379, or run a Docker engine for testcontainers',
      );
    }
  }
  return {
    databaseUrl,
    redisUrl,
    stop: async () => void (await Promise.all(stops.map((s) => s()))),
  };
}
