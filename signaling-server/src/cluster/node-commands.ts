// Commands addressed to one node, over the bus: each node subscribes to its own channel (a "room"
// name no client can use, since `#` is not allowed in room names) and acts on what arrives there.
// Today the one command is "drain": the API on any node asks the node that holds the sockets.
import type { Logger } from 'pino';
import type { RoomBus } from '../bus/bus.js';
import { Kind, decodeEnvelope, encodeEnvelope } from '../rooms/envelope.js';

export type NodeCommand = 'drain';

export const nodeChannel = (nodeId: string): string => `#node:${nodeId}`;

export interface NodeCommandsOptions {
  nodeId: string;
  bus: RoomBus;
  log: Logger;
  onCommand: (command: NodeCommand) => void;
}

export class NodeCommands {
  constructor(private readonly opts: NodeCommandsOptions) {}

  /** Listens on this node's channel; resolves once subscribed. */
  async start(): Promise<void> {
    const own = nodeChannel(this.opts.nodeId);
    this.opts.bus.onMessage((room, payload) => {
      if (room !== own) return;
      const envelope = decodeEnvelope(payload);
      if (envelope?.kind !== Kind.NodeCommand || envelope.command !== 'drain') {
        this.opts.log.warn({ room }, 'ignoring an unknown node command');
        return;
      }
      this.opts.log.info({ from: envelope.origin, command: envelope.command }, 'node command received');
      this.opts.onCommand(envelope.command);
    });
    await this.opts.bus.subscribe(own);
  }

  /** Resolves once the bus took the command; the node acts on it when it arrives. */
  async send(nodeId: string, command: NodeCommand): Promise<void> {
    await this.opts.bus.publish(nodeChannel(nodeId), encodeEnvelope(this.opts.nodeId, { kind: Kind.NodeCommand, command }));
  }
}
