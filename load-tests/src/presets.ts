// Sizes of each scenario. `small` finishes `bench` in about two minutes on a 2-core machine;
// the larger presets and every single flag scale it up.
import type { LoadSpec } from './scenarios/engine.js';
import type { IdleSpec } from './scenarios/idle.js';
import type { ScenarioName } from './results.js';

export interface Settings {
  warmupS: number;
  durationS: number;
  drainS: number;
  soakS: number;
  pairs: number;
  rate: number;
  rooms: number;
  roomSize: number;
  fanoutRate: number;
  joinsPerSecond: number;
  holdMs: number;
  churnClients: number;
  churnRooms: number;
  /** Spread: rooms of `spreadRoomSize` on `spreadNodes` project nodes, `spreadRate` signals/s in all. */
  spreadRooms: number;
  spreadRoomSize: number;
  spreadRate: number;
  spreadNodes: number;
  connections: number;
  idleRoomSize: number;
  settleS: number;
  workers: number;
  /** At least this many source addresses … */
  sources: number;
  /** … and no more than this many clients on one (the project allows 100 per IP by default). */
  perSource: number;
  payload: number;
  concurrency: number;
}

export const PRESETS: Record<string, Settings> = {
  small: {
    warmupS: 2,
    durationS: 12,
    drainS: 5,
    soakS: 60,
    pairs: 200,
    rate: 5,
    rooms: 40,
    roomSize: 10,
    fanoutRate: 2,
    joinsPerSecond: 500,
    holdMs: 1000,
    churnClients: 800,
    churnRooms: 200,
    spreadRooms: 250,
    spreadRoomSize: 8,
    spreadRate: 4000,
    spreadNodes: 8,
    connections: 50_000,
    idleRoomSize: 4,
    settleS: 5,
    workers: 2,
    sources: 4,
    perSource: 50,
    payload: 128,
    concurrency: 64,
  },
  medium: {
    warmupS: 3,
    durationS: 30,
    drainS: 10,
    soakS: 600,
    pairs: 1000,
    rate: 5,
    rooms: 100,
    roomSize: 20,
    fanoutRate: 2,
    joinsPerSecond: 500,
    holdMs: 2000,
    churnClients: 1500,
    churnRooms: 300,
    spreadRooms: 500,
    spreadRoomSize: 8,
    spreadRate: 4000,
    spreadNodes: 8,
    connections: 50_000,
    idleRoomSize: 4,
    settleS: 10,
    workers: 2,
    sources: 4,
    perSource: 50,
    payload: 128,
    concurrency: 128,
  },
  large: {
    warmupS: 5,
    durationS: 60,
    drainS: 15,
    soakS: 3600,
    pairs: 2500,
    rate: 10,
    rooms: 200,
    roomSize: 50,
    fanoutRate: 2,
    joinsPerSecond: 1000,
    holdMs: 2000,
    churnClients: 3000,
    churnRooms: 500,
    spreadRooms: 1000,
    spreadRoomSize: 8,
    spreadRate: 8000,
    spreadNodes: 8,
    connections: 100_000,
    idleRoomSize: 4,
    settleS: 10,
    workers: 4,
    sources: 8,
    perSource: 50,
    payload: 128,
    concurrency: 256,
  },
};

/** One arm of the spread scenario: the same rooms and rate, each room over `span` of the nodes. */
export function spreadSpec(s: Settings, span: number): LoadSpec {
  const ratePerRoom = s.spreadRate / Math.max(1, s.spreadRooms);
  return {
    scenario: 'spread',
    warmupMs: s.warmupS * 1000,
    durationMs: s.durationS * 1000,
    drainMs: s.drainS * 1000,
    spread: { rooms: s.spreadRooms, roomSize: s.spreadRoomSize, ratePerRoom, span },
    params: {
      span,
      nodes: s.spreadNodes,
      rooms: s.spreadRooms,
      roomSize: s.spreadRoomSize,
      offeredPerS: s.spreadRate,
      payloadBytes: s.payload,
    },
  };
}

export function loadSpec(scenario: Exclude<ScenarioName, 'idle' | 'spread'>, s: Settings): LoadSpec {
  const base = { warmupMs: s.warmupS * 1000, drainMs: s.drainS * 1000 };
  const relay = { pairs: s.pairs, ratePerPair: s.rate };
  const fanout = { rooms: s.rooms, roomSize: s.roomSize, ratePerRoom: s.fanoutRate };
  const churn = { clients: s.churnClients, joinsPerSecond: s.joinsPerSecond, holdMs: s.holdMs, rooms: s.churnRooms };
  switch (scenario) {
    case 'relay':
      return {
        ...base,
        scenario,
        durationMs: s.durationS * 1000,
        relay,
        params: { pairs: s.pairs, ratePerPair: s.rate, offeredPerS: s.pairs * s.rate, payloadBytes: s.payload },
      };
    case 'fanout':
      return {
        ...base,
        scenario,
        durationMs: s.durationS * 1000,
        fanout,
        params: {
          rooms: s.rooms,
          roomSize: s.roomSize,
          ratePerRoom: s.fanoutRate,
          offeredDeliveriesPerS: s.rooms * (s.roomSize - 1) * s.fanoutRate,
          payloadBytes: s.payload,
        },
      };
    case 'churn':
      return {
        ...base,
        scenario,
        durationMs: s.durationS * 1000,
        churn,
        params: { joinsPerSecond: s.joinsPerSecond, holdMs: s.holdMs, clients: s.churnClients, rooms: s.churnRooms },
      };
    case 'soak':
      // Half the relay and fan-out rates and a fifth of the joins, together, for a long time.
      return {
        ...base,
        scenario,
        durationMs: s.soakS * 1000,
        relay: { ...relay, pairs: Math.max(1, Math.round(s.pairs / 2)) },
        fanout: { ...fanout, rooms: Math.max(1, Math.round(s.rooms / 2)) },
        churn: { ...churn, joinsPerSecond: s.joinsPerSecond / 5, clients: Math.max(10, Math.round(s.churnClients / 5)) },
        sampleMs: Math.max(1000, Math.min(30_000, (s.soakS * 1000) / 60)),
        params: {
          durationS: s.soakS,
          pairs: Math.round(s.pairs / 2),
          rooms: Math.round(s.rooms / 2),
          joinsPerSecond: s.joinsPerSecond / 5,
        },
      };
  }
}

export function idleSpec(s: Settings): IdleSpec {
  return { connections: s.connections, roomSize: s.idleRoomSize, settleMs: s.settleS * 1000 };
}
