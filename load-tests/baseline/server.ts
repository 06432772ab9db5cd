// The baseline: one Socket.IO 4 node with @socket.io/redis-adapter, speaking the same
// join/signal/broadcast semantics as protocol v1 in Socket.IO events. Run two or more of these
// on one Redis (same REDIS_PREFIX) to get what a team would build instead of the project.
//
// Events, client → server (each with an acknowledgement callback where a reply is due):
//   join {room, name?, meta?} → {self, peers:[{id,name,meta}]} | {error:{code,message}}
//   leave {room} → {} | {error}
//   signal {room, to, data}, broadcast {room, data} → ack {} only when the client asks for one
// server → client: signal/broadcast {room, from, data}, peer-joined {room, peer},
//   peer-left {room, peer:{id}, reason}, protocol-error {code, message}
// A participant id is the Socket.IO socket id (one connection = one participant in every room).
import { createServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import client from 'prom-client';

const port = Number(process.env.PORT ?? 0);
const nodeId = process.env.NODE_ID ?? `baseline-${process.pid}`;
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.REDIS_PREFIX ?? 'socket.io';
const maxRooms = Number(process.env.MAX_ROOMS_PER_CONNECTION ?? 16);

const ROOM = /^[A-Za-z0-9_.:-]{1,128}$/;

interface Peer {
  id: string;
  name: string;
  meta: Record<string, unknown>;
}
interface SocketData {
  name: string;
  meta: Record<string, unknown>;
}
type Reply = (body: unknown) => void;

function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), node: nodeId, msg, ...fields }) + '\n');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });
const connections = new client.Gauge({ name: 'baseline_connections', help: 'Open Socket.IO connections', registers: [registry] });

const http = createServer((req, res) => {
  if (req.url === '/metrics') {
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
    return;
  }
  if (req.url === '/healthz') {
    res.writeHead(200).end('ok');
    return;
  }
  res.writeHead(404).end();
});

const pub = new Redis(redisUrl, { lazyConnect: false });
const sub = pub.duplicate();
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
});
io.adapter(createAdapter(pub, sub, { key: prefix }));

function fail(ack: Reply | undefined, socket: Socket, code: string, message: string): void {
  if (ack) ack({ error: { code, message } });
  else socket.emit('protocol-error', { code, message });
}

io.on('connection', (socket) => {
  connections.inc();
  const data: SocketData = { name: '', meta: {} };
  socket.data = data;

  socket.on('join', async (msg: unknown, ack?: Reply) => {
    if (!isObject(msg) || typeof msg.room !== 'string' || !ROOM.test(msg.room)) return fail(ack, socket, 'bad-request', 'room');
    const room = msg.room;
    if (socket.rooms.has(room)) return fail(ack, socket, 'already-joined', room);
    if (socket.rooms.size - 1 >= maxRooms) return fail(ack, socket, 'too-many-rooms', room);
    if (typeof msg.name === 'string') data.name = msg.name.slice(0, 64);
    if (isObject(msg.meta)) data.meta = msg.meta;
    socket.join(room);
    const self: Peer = { id: socket.id, name: data.name, meta: data.meta };
    let peers: Peer[];
    try {
      // Asks every node through Redis, as a Socket.IO application would to list a room.
      const sockets = await io.in(room).fetchSockets();
      peers = sockets.filter((s) => s.id !== socket.id).map((s) => ({ id: s.id, ...(s.data as SocketData) }));
    } catch {
      socket.leave(room);
      return fail(ack, socket, 'unavailable', 'peers');
    }
    socket.to(room).emit('peer-joined', { room, peer: self });
    ack?.({ room, self, peers });
  });

  socket.on('leave', (msg: unknown, ack?: Reply) => {
    if (!isObject(msg) || typeof msg.room !== 'string') return fail(ack, socket, 'bad-request', 'room');
    if (!socket.rooms.has(msg.room) || msg.room === socket.id) return fail(ack, socket, 'not-joined', msg.room);
    socket.leave(msg.room);
    socket.to(msg.room).emit('peer-left', { room: msg.room, peer: { id: socket.id }, reason: 'left' });
    ack?.({ room: msg.room });
  });

  socket.on('signal', (msg: unknown, ack?: Reply) => {
    if (!isObject(msg) || typeof msg.room !== 'string' || typeof msg.to !== 'string')
      return fail(ack, socket, 'bad-request', 'signal');
    if (!socket.rooms.has(msg.room) || msg.room === socket.id) return fail(ack, socket, 'not-joined', msg.room);
    // The socket's own room carries messages to one participant, on whichever node it is.
    io.to(msg.to).emit('signal', { room: msg.room, from: socket.id, data: msg.data });
    ack?.({});
  });

  socket.on('broadcast', (msg: unknown, ack?: Reply) => {
    if (!isObject(msg) || typeof msg.room !== 'string') return fail(ack, socket, 'bad-request', 'broadcast');
    if (!socket.rooms.has(msg.room) || msg.room === socket.id) return fail(ack, socket, 'not-joined', msg.room);
    socket.to(msg.room).emit('broadcast', { room: msg.room, from: socket.id, data: msg.data });
    ack?.({});
  });

  socket.on('disconnecting', () => {
    for (const room of socket.rooms) {
      if (room !== socket.id) socket.to(room).emit('peer-left', { room, peer: { id: socket.id }, reason: 'disconnected' });
    }
  });
  socket.on('disconnect', () => connections.dec());
});

http.listen(port, () => {
  const addr = http.address();
  log('listening', { port: typeof addr === 'object' && addr ? addr.port : port });
});

function shutdown(): void {
  log('shutting down');
  // Exit through process.exit so that --cpu-prof writes its profile.
  const force = setTimeout(() => process.exit(0), 3_000);
  force.unref();
  io.close(() => {
    pub.disconnect();
    sub.disconnect();
    process.exit(0);
  });
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
