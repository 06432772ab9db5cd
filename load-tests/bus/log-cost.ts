// What the room log costs per message: the project's RedisBus (one script call that XADDs each
// message to the room's stream and PUBLISHes the batch) against plain PUBLISH, as the bus did
// before the log, at the same paced rate, through one publisher and one subscriber process, on a
// private redis-server so nothing else shares its CPU.
//   node --import tsx load-tests/bus/log-cost.ts [--rate 4000] [--seconds 10] [--rooms 50] [--rounds 3]
// Prints Redis CPU (INFO used_cpu_user + used_cpu_sys) and this process's CPU per delivered message.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RedisBus } from '../../signaling-server/src/bus/redis-bus.js';
import { MESSAGE, pacedArgs } from './paced-args.js';

const {
  rate: RATE,
  seconds: SECONDS,
  rooms: ROOMS,
  rounds: ROUNDS,
} = pacedArgs({ rate: 4000, seconds: 10, rooms: 50, rounds: 3 });
interface Sender {
  publish(room: string, message: string): Promise<unknown>;
  received(): number;
  close(): Promise<void>;
}

async function plainPublish(url: string): Promise<Sender> {
  const pub = new Redis(url);
  const sub = new Redis(url);
  let count = 0;
  sub.on('message', () => count++);
  await sub.subscribe(...Array.from({ length: ROOMS }, (_, i) => `plain:room:r${i}`));
  return {
    publish: (room, message) => pub.publish(`plain:room:${room}`, message),
    received: () => count,
    close: async () => {
      pub.disconnect();
      sub.disconnect();
    },
  };
}

async function roomLog(url: string): Promise<Sender> {
  const options = { url, prefix: 'log:', timeoutMs: 5000, retentionMs: 70_000, log: pino({ level: 'silent' }) };
  const [publisher, subscriber] = [
    await RedisBus.connect({ ...options, nodeId: 'publisher' }),
    await RedisBus.connect({ ...options, nodeId: 'subscriber' }),
  ];
  let count = 0;
  subscriber.onMessage(() => count++);
  for (let i = 0; i < ROOMS; i++) await subscriber.subscribe(`r${i}`);
  return {
    publish: (room, message) => publisher.publish(room, message),
    received: () => count,
    close: async () => {
      await publisher.close();
      await subscriber.close();
    },
  };
}

async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string) => Number(info.match(new RegExp(`^${name}:([0-9.]+)`, 'm'))?.[1]);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** Sends RATE messages a second for SECONDS, one per room in turn, in 1 ms ticks. */
async function measure(name: string, sender: Sender, admin: Redis) {
  const total = RATE * SECONDS;
  const redisBefore = await redisCpuSeconds(admin);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE));
    for (; sent < due; sent++) void sender.publish(`r${sent % ROOMS}`, MESSAGE);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  while (sender.received() < total) await new Promise((resolve) => setTimeout(resolve, 5));
  const cpu = process.cpuUsage(cpuBefore);
  const redis = (await redisCpuSeconds(admin)) - redisBefore;
  return {
    name,
    redisUs: (redis * 1e6) / total,
    clientUs: (cpu.user + cpu.system) / total,
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
  stdio: 'ignore',
});
const url = `redis://127.0.0.1:${port}`;
const admin = new Redis(url, { retryStrategy: (n) => (n > 50 ? null : 100) });
admin.on('error', () => {}); // refused until redis-server listens; ping() below waits for it
await admin.ping();
try {
  const rows: { name: string; redisUs: number; clientUs: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first: the machine warms up and other tenants come and go.
    const order = round % 2 === 0 ? [plainPublish, roomLog] : [roomLog, plainPublish];
    for (const make of order) {
      const sender = await make(url);
      rows.push(await measure(make === plainPublish ? 'PUBLISH' : 'log + PUBLISH', sender, admin));
      await sender.close();
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  process.stdout.write(`${RATE} messages/s for ${SECONDS} s over ${ROOMS} rooms, ${ROUNDS} rounds, one subscriber\n`);
  process.stdout.write(
    '| bus | Redis CPU µs/message (median) | publisher+subscriber CPU µs/message (median) | rounds (Redis) |\n|---|---|---|---|\n',
  );
  for (const name of ['PUBLISH', 'log + PUBLISH']) {
    const mine = rows.filter((r) => r.name === name);
    process.stdout.write(
      `| ${name} | ${median(mine.map((r) => r.redisUs)).toFixed(1)} | ${median(mine.map((r) => r.clientUs)).toFixed(1)} | ${mine
        .map((r) => r.redisUs.toFixed(1))
        .join(', ')} |\n`,
    );
  }
} finally {
  admin.disconnect();
  redisServer.kill('SIGTERM');
}
