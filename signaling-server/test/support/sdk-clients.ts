// The client SDK (client/src) as an application uses it, against real nodes: every client a test
// makes is closed at the end, and what each one emitted is kept in order to assert on.
import { WebSocket } from 'ws';
import { SignalingClient, type SignalingClientOptions, type SignalingEvents } from '../../../client/src/index.js';

type EventName = keyof SignalingEvents;

export class SdkClients {
  private readonly clients: SignalingClient[] = [];

  make(url: string | string[], options: Partial<SignalingClientOptions> = {}): SignalingClient {
    const client = new SignalingClient({
      url,
      WebSocket: WebSocket as unknown as NonNullable<SignalingClientOptions['WebSocket']>,
      reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
      ...options,
    });
    this.clients.push(client);
    return client;
  }

  closeAll(): void {
    for (const c of this.clients.splice(0)) c.close();
  }
}

/** Every event of the given types a client emits from now on, in order, as `[type, event]`. */
export function recordEvents<K extends EventName>(client: SignalingClient, types: K[]): Array<[K, SignalingEvents[K]]> {
  const log: Array<[K, SignalingEvents[K]]> = [];
  for (const type of types) client.on(type, (event) => log.push([type, event]));
  return log;
}
