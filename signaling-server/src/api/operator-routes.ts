// The operator API's routes (docs/operations.md has them with examples). Reads come from Postgres,
// so every node answers for the whole cluster; actions go through RoomAdmin (the room's lock, seq
// and channel) or, for a drain, to the node concerned over the bus.
import type { Logger } from 'pino';
import type { NodeCommands } from '../cluster/node-commands.js';
import { dependency } from '../rooms/dependency.js';
import type { RoomAdmin } from '../rooms/room-admin.js';
import type { ClusterReader } from '../store/cluster-reader.js';
import { defineRoute, fail, json, type Route } from './router.js';
import * as S from './schemas.js';

export interface OperatorRoutesOptions {
  nodeId: string;
  reader: ClusterReader;
  admin: RoomAdmin;
  commands: NodeCommands;
  /** Starts this node's own drain (the same as SIGTERM). */
  drainSelf: () => void;
  log: Logger;
  /** The OpenAPI document, built from this same table. */
  openApi: () => unknown;
}

const noRoom = (room: string) => fail(404, 'not-found', `no room ${room}`);

export function operatorRoutes(o: OperatorRoutesOptions): Route[] {
  const db = <T>(work: Promise<T>) => dependency(work, o.log);
  return [
    defineRoute({
      method: 'GET',
      path: '/v1/openapi.json',
      access: 'public',
      summary: 'This API as an OpenAPI 3.1 document',
      status: 200,
      response: S.OpenApiDocument,
      handle: async () => json(200, o.openApi()),
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/rooms',
      access: 'read',
      summary: 'Rooms with at least one participant, by name, a page at a time',
      query: S.RoomListQuery,
      status: 200,
      response: S.RoomList,
      handle: async ({ query }) => {
        const after = query.cursor ? S.decodeCursor(query.cursor) : null;
        const rooms = await db(o.reader.listRooms(after, query.limit + 1));
        const page = rooms.slice(0, query.limit);
        const nextCursor = rooms.length > query.limit ? S.encodeCursor(page[page.length - 1]!.name) : null;
        return json(200, { rooms: page, nextCursor });
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/rooms/{room}',
      access: 'read',
      summary: 'One room: its state and its participants with their node and status',
      params: S.RoomParams,
      status: 200,
      response: S.RoomDetail,
      errors: [404],
      handle: async ({ params }) => {
        const found = await db(o.reader.getRoom(params.room));
        if (!found) return noRoom(params.room);
        const { room, state, participants } = found;
        return json(200, { room, state: { version: room.version, data: state }, participants });
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/rooms/{room}/close',
      access: 'write',
      summary: 'Removes every participant (each client gets `kicked`, the others `peer-left` reason `kicked`)',
      params: S.RoomParams,
      body: S.CloseBody,
      status: 200,
      response: S.CloseResult,
      errors: [404],
      handle: async ({ params, body }) => {
        const participants = await db(o.reader.listParticipants(params.room));
        if (participants.length === 0) return noRoom(params.room);
        const ids = participants.map((p) => p.id);
        const removed = await db(o.admin.closeRoom(params.room, ids, body.reason));
        return json(200, { removed });
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/rooms/{room}/participants',
      access: 'read',
      summary: "The room's participants",
      params: S.RoomParams,
      status: 200,
      response: S.ParticipantList,
      handle: async ({ params }) => json(200, { participants: await db(o.reader.listParticipants(params.room)) }),
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/rooms/{room}/participants/{id}',
      access: 'read',
      summary: 'One participant',
      params: S.ParticipantParams,
      status: 200,
      response: S.Participant,
      errors: [404],
      handle: async ({ params }) => {
        const participant = await db(o.reader.getParticipant(params.room, params.id));
        return participant
          ? json(200, participant)
          : fail(404, 'not-found', `no participant ${params.id} in room ${params.room}`);
      },
    }),
    defineRoute({
      method: 'DELETE',
      path: '/v1/rooms/{room}/participants/{id}',
      access: 'write',
      summary: 'Removes a participant: its client gets `kicked`, the others `peer-left` reason `kicked`',
      params: S.ParticipantParams,
      body: S.RemoveBody,
      status: 200,
      response: S.RemoveResult,
      errors: [404],
      handle: async ({ params, body }) => {
        const removed = await db(o.admin.removeParticipant(params.room, params.id, body.reason));
        return removed
          ? json(200, { removed: true })
          : fail(404, 'not-found', `no participant ${params.id} in room ${params.room}`);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/rooms/{room}/send',
      access: 'write',
      summary: 'Sends a `server` message to the whole room or to chosen participants',
      params: S.RoomParams,
      body: S.SendBody,
      status: 200,
      response: S.SendResult,
      errors: [404],
      handle: async ({ params, body }) => {
        const present = new Set((await db(o.reader.listParticipants(params.room))).map((p) => p.id));
        if (present.size === 0) return noRoom(params.room);
        if (!body.to) {
          await db(o.admin.send(params.room, body.data));
          return json(200, { sent: null, notFound: [] });
        }
        const to = [...new Set(body.to)];
        const sent = to.filter((id) => present.has(id));
        const notFound = to.filter((id) => !present.has(id));
        if (sent.length > 0) await db(o.admin.send(params.room, body.data, sent));
        return json(200, { sent, notFound });
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/rooms/{room}/state',
      access: 'read',
      summary: "The room's shared state and its version",
      params: S.RoomParams,
      status: 200,
      response: S.RoomState,
      errors: [404],
      handle: async ({ params }) => {
        const found = await db(o.reader.getRoom(params.room));
        return found ? json(200, { version: found.room.version, data: found.state }) : noRoom(params.room);
      },
    }),
    defineRoute({
      method: 'PUT',
      path: '/v1/rooms/{room}/state',
      access: 'write',
      summary: 'Compare-and-set of the room state; participants get the usual `state` event, `from` "server"',
      params: S.RoomParams,
      body: S.StateBody,
      status: 200,
      response: S.StateResult,
      errors: [404, 409],
      handle: async ({ params, body }) => {
        if (!(await db(o.reader.getRoom(params.room)))) return noRoom(params.room);
        const written = await db(o.admin.writeState(params.room, body.version, body.data));
        if (written.ok) return json(200, { version: written.version });
        return fail(409, 'version-conflict', `room state is at version ${written.current.version}`, { state: written.current });
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/cluster',
      access: 'read',
      summary: 'The nodes: heartbeat, status (draining), connections and participants',
      query: S.ClusterQuery,
      status: 200,
      response: S.ClusterInfo,
      handle: async ({ query }) => json(200, { node: o.nodeId, nodes: await db(o.reader.listNodes(query.dead === 'true')) }),
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/cluster/nodes/{id}/drain',
      access: 'write',
      summary: 'Drains one node as SIGTERM would: its clients reconnect elsewhere, then it exits',
      params: S.NodeParams,
      status: 202,
      response: S.DrainResult,
      errors: [404],
      handle: async ({ params }) => {
        if (params.id === o.nodeId) {
          o.drainSelf();
        } else {
          if (!(await db(o.reader.isLiveNode(params.id)))) return fail(404, 'not-found', `no live node ${params.id}`);
          await db(o.commands.send(params.id, 'drain'));
        }
        return json(202, { node: params.id, accepted: true });
      },
    }),
  ];
}
