// The floor: the least a single uWebSockets.js process can do to relay a signal or fan out a
// broadcast, on this machine. It answers the protocol-v1 subset the generator uses (welcome,
// join, signal, broadcast) and nothing else: no validation, no limits, no metrics, no logs, no
// bus, no database. It is not a signaling server; it measures what the kernel, V8 and uWS cost
// per delivery before any server logic runs, so a CPU target can be checked against what is
// physically possible here (docs/benchmarks.md, "Where the time goes"). One node only.
import type * as UWS from 'uWebSockets.js';
import { loadUws } from '../../signaling-server/src/transport/uws.js';

// The project's loader, which refuses uWS's pure-JavaScript fallback: a floor measured on it
// would be no floor at all.
const { uws } = await loadUws(false);

interface Client {
  id: string;
}

const byId = new Map<string, UWS.WebSocket<Client>>();
let nextId = 1;
const app = uws.App();

app.ws<Client>('/ws', {
  compression: uws.DISABLED,
  // The project's defaults (MAX_MESSAGE_BYTES × 16, SEND_BUFFER_BYTES), so that neither drops
  // what the other would keep.
  maxPayloadLength: 1024 * 1024,
  maxBackpressure: 1024 * 1024,
  open: (ws) => {
    ws.send(JSON.stringify({ type: 'welcome', protocol: 1, node: 'floor', heartbeatMs: 60_000 }));
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
        self.id = `p${nextId++}`;
        byId.set(self.id, ws);
        ws.subscribe(msg.room);
        const joined = { type: 'joined', id: msg.id, room: msg.room, self: { id: self.id, name: '', meta: {} }, peers: [] };
        ws.send(JSON.stringify({ ...joined, state: { version: 0, data: null }, resume: '' }));
        return;
      }
      case 'signal':
        byId.get(msg.to)?.send(JSON.stringify({ type: 'signal', room: msg.room, from: self.id, data: msg.data }));
        return;
      case 'broadcast':
        ws.publish(msg.room, JSON.stringify({ type: 'broadcast', room: msg.room, from: self.id, data: msg.data }));
        return;
    }
  },
  close: (ws) => {
    byId.delete(ws.getUserData().id);
  },
});

app.listen('127.0.0.1', Number(process.env.PORT ?? 0), (socket) => {
  if (!socket) throw new Error('floor: cannot listen');
  process.stdout.write(JSON.stringify({ msg: 'listening', port: uws.us_socket_local_port(socket) }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
