// The shape of what a run measures, as written to load-tests/results/<date>.json.
import type { Percentiles } from './histogram.js';
import type { TargetKind } from './cluster/cluster.js';
import type { SetupResult } from './worker/pool.js';

export type ScenarioName = 'relay' | 'fanout' | 'churn' | 'idle' | 'soak' | 'spread';
export const SCENARIOS: readonly ScenarioName[] = ['relay', 'fanout', 'churn', 'idle', 'soak', 'spread'];

export interface FlowResult {
  sent: number;
  expected: number;
  delivered: number;
  lost: number;
  outOfOrder: number;
  /** Deliveries after the warm-up, the ones the latencies and the CPU figure are about. */
  measured: number;
  throughputPerS: number;
  latencyMs: Percentiles;
}

export interface ChurnResult {
  joins: number;
  leaves: number;
  failedJoins: number;
  failedLeaves: number;
  starved: number;
  joinsPerS: number;
  joinMs: Percentiles;
  leaveMs: Percentiles;
}

export interface CpuResult {
  /** CPU seconds of all server processes during the measured window (after warm-up, through drain). */
  serverSeconds: number;
  perNodeSeconds: number[];
  /** The shared Redis server's CPU in the same window; others' tests may add to it. */
  redisSeconds: number | null;
  /** The Postgres backends of the project's database in the same window (null for the baseline). */
  postgresSeconds: number | null;
  /** The generator process (all its worker threads). */
  generatorSeconds: number;
  /** Server CPU seconds per 1,000 measured deliveries (relay + fan-out + spread). */
  perThousandDeliveries: number | null;
  /** Server and Redis CPU seconds per 1,000 measured deliveries, the figure issue #15's targets are about (absent in older runs). */
  perThousandDeliveriesWithRedis?: number | null;
  /** Server CPU seconds per 1,000 measured joins (churn). */
  perThousandJoins: number | null;
}

export interface IdleResult {
  requested: number;
  /** Why fewer than requested were attempted, when so. */
  capReason: string | null;
  attempted: number;
  connected: number;
  failed: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** (RSS after − RSS before) / connected: the average, fixed growth of a cold node included. */
  bytesPerConnection: number | null;
  /** The node's RSS once the first half of the connections had settled. */
  rssHalfBytes?: number;
  /** (RSS after − RSS at half) / connections of the second half: what one more connection costs. */
  marginalBytesPerConnection?: number | null;
  joinsPerS: number;
}

export interface NodeSample {
  atS: number;
  rssBytes: number[];
  lagP99Ms: Array<number | null>;
  deliveredPerS: number;
  p99Ms: number | null;
}

export interface SoakResult {
  samples: NodeSample[];
  /** Growth of the summed RSS over the second half of the run, in MiB per minute (least squares). */
  rssSlopeMiBPerMin: number;
  maxLagP99Ms: number | null;
}

export interface ScenarioResult {
  scenario: ScenarioName;
  target: TargetKind;
  /** 1, 2, … when `bench --rounds` ran the scenario several times, alternating the targets. */
  round?: number;
  nodes: number;
  params: Record<string, number | string>;
  setup: SetupResult;
  windowS: number;
  relay?: FlowResult | undefined;
  fanout?: FlowResult | undefined;
  /** The spread scenario's signals; `params.span` says over how many nodes each room was spread. */
  spread?: FlowResult | undefined;
  churn?: ChurnResult | undefined;
  idle?: IdleResult | undefined;
  soak?: SoakResult | undefined;
  cpu: CpuResult;
  rssBytes: { before: number[]; after: number[] };
  errors: Record<string, number>;
  maxTimerLagMs: number;
  /** With --cpu-prof: where the servers' time went during the measured window. */
  profile?: ProfileSummary | undefined;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  commit: string | null;
  fdLimit: number;
}

export interface RunFile {
  startedAt: string;
  finishedAt: string;
  preset: string;
  command: string;
  machine: MachineInfo;
  results: ScenarioResult[];
}

export interface ProfileSummary {
  target: TargetKind;
  totalMs: number;
  /** Samples outside idle time, in ms. */
  busyMs: number;
  top: Array<{ fn: string; where: string; selfMs: number; selfPct: number }>;
  /** Application functions by inclusive time (self + callees); `selfMs` holds the inclusive figure. */
  appInclusive: Array<{ fn: string; where: string; selfMs: number; selfPct: number }>;
  byPackage: Array<{ pkg: string; selfMs: number; selfPct: number }>;
}
