// What the orchestrator and its worker threads say to each other.
import type { HistogramSnapshot } from '../histogram.js';
import type { TargetKind } from '../cluster/cluster.js';

export interface RelayPlan {
  firstPair: number;
  pairs: number;
  /** Signals per second per pair, alternating direction. */
  ratePerPair: number;
}

export interface FanoutPlan {
  firstRoom: number;
  rooms: number;
  roomSize: number;
  /** Broadcasts per second from each room's one broadcaster. */
  ratePerRoom: number;
}

export interface SpreadPlan {
  firstRoom: number;
  rooms: number;
  roomSize: number;
  /** Signals per second from each room's member 0 to its member 1. */
  ratePerRoom: number;
  /** How many nodes the members of one room are spread over. */
  span: number;
}

export interface ChurnPlan {
  firstClient: number;
  clients: number;
  joinsPerSecond: number;
  holdMs: number;
  rooms: number;
}

export interface IdlePlan {
  firstClient: number;
  clients: number;
  roomSize: number;
}

export interface WorkerPlan {
  index: number;
  workers: number;
  target: TargetKind;
  /** WebSocket URL of each node; members of a pair or room are spread over them. */
  urls: string[];
  sourceAddresses: string[];
  runId: string;
  payloadBytes: number;
  connectConcurrency: number;
  requestTimeoutMs: number;
  relay?: RelayPlan | undefined;
  fanout?: FanoutPlan | undefined;
  churn?: ChurnPlan | undefined;
  idle?: IdlePlan | undefined;
  spread?: SpreadPlan | undefined;
}

export type ToWorker = { type: 'start'; warmupMs: number; durationMs: number; drainMs: number } | { type: 'close' };

export interface FlowStats {
  sent: number;
  /** Deliveries due: one per signal, K-1 per broadcast. */
  expected: number;
  delivered: number;
  /** Deliveries of messages sent after the warm-up; these are in `latency`. */
  measured: number;
  /** Deliveries whose sequence number was not the next one expected. */
  outOfOrder: number;
  latency: HistogramSnapshot;
}

export interface ChurnStats {
  joins: number;
  leaves: number;
  failedJoins: number;
  failedLeaves: number;
  /** Joins that were due while every churn client was busy: the generator fell behind. */
  starved: number;
  join: HistogramSnapshot;
  leave: HistogramSnapshot;
}

export interface WorkerStats {
  relay?: FlowStats | undefined;
  fanout?: FlowStats | undefined;
  spread?: FlowStats | undefined;
  churn?: ChurnStats | undefined;
  errors: Record<string, number>;
  /** Worst lateness of the sending timer: when high, the generator is the bottleneck. */
  maxTimerLagMs: number;
}

export interface Progress {
  sent: number;
  delivered: number;
  joins: number;
  errors: number;
  /** Latencies of deliveries since the previous progress report. */
  interval: HistogramSnapshot;
}

export type FromWorker =
  | { type: 'ready'; connected: number; failed: number; setupMs: number; errors: Record<string, number> }
  | ({ type: 'progress' } & Progress)
  | { type: 'done'; stats: WorkerStats }
  | { type: 'closed' }
  | { type: 'fatal'; message: string };
