// The two-node floor (`--target floor2`): the least two uWebSockets.js processes sharing one Redis
// can do to relay a signal or fan out a broadcast between nodes. Each node receives a frame,
// JSON-parses it, and queues one PUBLISH to the room's channel; the queue goes out as one pipeline
// per event-loop turn; every node subscribed to the room sends the frame on to its own clients.
// No validation, limits, log, metrics or database: what a cross-node delivery costs here before
// any server logic, so the project's CPU per delivery can be judged against it (issue #15).
// It answers the same protocol-v1 subset as the one-node floor (welcome, join, signal, broadcast).
import type * as UWS from 'uWebSockets.js';
import { Redis } from 'ioredis';
import { loadUws } from '../../signaling-server/src/transport/uws.js';

const { uws } = await loadUws(false);

const NODE = process.env.NODE_ID ?? `floor2-${process.pid}`;
const PREFIX = process.env.REDIS_PREFIX ?? 'floor2:';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const pub = new Redis(redisUrl);
const sub = new Redis(redisUrl);

interface Client {
  id: string;
  rooms: string[];
}

const byId = new Map<string, UWS.WebSocket<Client>>();
/** Local members per room: a node subscribes to a room's channel while it has one. */
const members = new Map<string, number>();
let nextId = 1;

// A bus message is `<addressee or *origin node>\n<the frame to send>`: the receiving node routes
// on the head and sends the frame as it is, with no second parse.
const queued: Array<[string, string]> = [];
function publish(room: string, message: string): void {
  if (!queued.length) setImmediate(flush);
  queued.push([PREFIX + room, message]);
}
function flush(): void {
  const p = pub.pipeline();
  for (const [channel, message] of queued.splice(0)) p.publish(channel, message);
  void p.exec();
}

const app = uws.App();

sub.on('message', (channel: string, message: string) => {
  const room = channel.slice(PREFIX.length);
  const cut = message.indexOf('\n');
  const head = message.slice(0, cut);
  const frame = message.slice(cut + 1);
  if (head.startsWith('*')) {
    // The origin node has already sent the broadcast to its own members.
    if (head.slice(1) !== NODE) app.publish(room, frame);
  } else {
    byId.get(head)?.send(frame);
  }
});

app.ws<Client>('/ws', {
  compression: uws.DISABLED,
  maxPayloadLength: 1024 * 1024,
  maxBackpressure: 1024 * 1024,
  upgrade: (res, req, context) => {
    res.upgrade<Client>(
      { id: '', rooms: [] },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    ws.send(JSON.stringify({ type: 'welcome', protocol: 1, node: NODE, heartbeatMs: 60_000 }));
  },
  message: (ws, message) => {
    const msg = JSON.parse(Buffer.from(message).toString()) as {
      type: string;
      id?: number;
      room: string;
      to: string;
      data: unknown;
    };
    const self = ws.getUserData();
    switch (msg.type) {
      case 'join': {
        self.id = `${NODE}-${nextId++}`;
        self.rooms.push(msg.room);
        byId.set(self.id, ws);
        ws.subscribe(msg.room);
        const n = (members.get(msg.room) ?? 0) + 1;
        members.set(msg.room, n);
        const joined = JSON.stringify({
          type: 'joined',
          id: msg.id,
          room: msg.room,
          self: { id: self.id, name: '', meta: {} },
          peers: [],
          state: { version: 0, data: null },
          resume: '',
        });
        // Answer once the node hears the room, so that nothing sent to the new member is missed.
        if (n > 1) ws.send(joined);
        else void sub.subscribe(PREFIX + msg.room).then(() => byId.get(self.id)?.send(joined));
        return;
      }
      case 'signal': {
        const frame = JSON.stringify({ type: 'signal', room: msg.room, from: self.id, data: msg.data });
        const local = byId.get(msg.to);
        if (local) local.send(frame);
        else publish(msg.room, `${msg.to}\n${frame}`);
        return;
      }
      case 'broadcast': {
        const frame = JSON.stringify({ type: 'broadcast', room: msg.room, from: self.id, data: msg.data });
        ws.publish(msg.room, frame);
        publish(msg.room, `*${NODE}\n${frame}`);
        return;
      }
    }
  },
  close: (ws) => {
    const self = ws.getUserData();
    byId.delete(self.id);
    for (const room of self.rooms) {
      const n = (members.get(room) ?? 1) - 1;
      if (n > 0) members.set(room, n);
      else {
        members.delete(room);
        void sub.unsubscribe(PREFIX + room);
      }
    }
  },
});

app.listen('127.0.0.1', Number(process.env.PORT ?? 0), (socket) => {
  if (!socket) throw new Error('floor2: cannot listen');
  process.stdout.write(JSON.stringify({ msg: 'listening', port: uws.us_socket_local_port(socket) }) + '\n');
});
process.on('SIGTERM', () => {
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
});
