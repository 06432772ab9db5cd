// One worker thread of the generator: opens its share of the clients, drives the load on its own
// timer, and reports counts and latency histograms. Every pair or room lives in one worker, so
// sender and receiver stamp and read the same clock and losses are counted without coordination.
import { parentPort, workerData } from 'node:worker_threads';
import { LatencyHistogram, nowUs } from '../histogram.js';
import { RequestError, type ConnectOptions, type Delivery, type SignalingClient } from '../clients/client.js';
import { connectProject } from '../clients/project-client.js';
import { connectBaseline } from '../clients/socketio-client.js';
import { spreadNode } from './placement.js';
import type { ChurnStats, FlowStats, FromWorker, ToWorker, WorkerPlan } from './messages.js';

const plan = (workerData as { plan: WorkerPlan }).plan;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

// The floor speaks the protocol-v1 subset the project client uses.
const connectFn = plan.target === 'baseline' ? connectBaseline : connectProject;
const errors: Record<string, number> = {};
const countError = (code: string) => {
  errors[code] = (errors[code] ?? 0) + 1;
};
const codeOf = (err: unknown) => (err instanceof RequestError ? err.code : 'exception');

const clients: SignalingClient[] = [];
let clientSeq = 0;

async function connect(node: number): Promise<SignalingClient> {
  const n = plan.sourceAddresses.length;
  const opts: ConnectOptions = {
    url: plan.urls[node % plan.urls.length]!,
    localAddress: n ? plan.sourceAddresses[(plan.index + clientSeq++ * plan.workers) % n] : undefined,
    timeoutMs: plan.requestTimeoutMs,
  };
  const c = await connectFn(opts);
  c.onError = countError;
  clients.push(c);
  return c;
}

/** Runs `tasks` with at most `limit` in flight; failures are counted, not thrown. */
async function runPool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  let failed = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        failed++;
        countError(`setup:${codeOf(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
  return failed;
}

const padding = 'x'.repeat(plan.payloadBytes);
let warmEndsUs = Number.POSITIVE_INFINITY;
const interval = new LatencyHistogram();

// ---- flows: relay and fan-out share the delivery accounting ----

class Flow {
  sent = 0;
  expected = 0;
  delivered = 0;
  measured = 0;
  outOfOrder = 0;
  readonly latency = new LatencyHistogram();

  /** Returns a handler for one receiver of the sequence of the participant `from`. */
  receiver(from: string): (delivery: Delivery) => void {
    let last = 0;
    return (delivery) => {
      const at = nowUs();
      if (delivery.from !== from) {
        countError(`misrouted-${delivery.kind}`);
        return;
      }
      const d = delivery.data as { s: number; t: number; w?: number };
      this.delivered++;
      if (d.s !== last + 1) this.outOfOrder++;
      if (d.s > last) last = d.s;
      if (!d.w) {
        this.measured++;
        this.latency.record(at - d.t);
        interval.record(at - d.t);
      }
      if (isDraining && this.delivered >= this.expected) checkDrained();
    };
  }

  stats(): FlowStats {
    const { sent, expected, delivered, measured, outOfOrder } = this;
    return { sent, expected, delivered, measured, outOfOrder, latency: this.latency.snapshot() };
  }
}

function payload(seq: number, t: number): Record<string, unknown> {
  return t < warmEndsUs ? { s: seq, t, w: 1, p: padding } : { s: seq, t, p: padding };
}

interface Pair {
  room: string;
  a: SignalingClient;
  b: SignalingClient;
  aId: string;
  bId: string;
  seqAB: number;
  seqBA: number;
  isTurnOfA: boolean;
}

const relay = plan.relay ? new Flow() : undefined;
const pairs: Pair[] = [];

async function setupRelay(): Promise<number> {
  const p = plan.relay!;
  return runPool(p.pairs, plan.connectConcurrency, async (i) => {
    const g = p.firstPair + i;
    const room = `${plan.runId}-r-${g}`;
    // Members of a pair sit on different nodes whenever there are two or more.
    const a = await connect(g);
    const b = await connect(g + 1);
    const aId = await a.join(room);
    const bId = await b.join(room);
    const toB = relay!.receiver(aId);
    const toA = relay!.receiver(bId);
    b.onDelivery = (d) => (d.kind === 'signal' ? toB(d) : countError('unexpected-broadcast'));
    a.onDelivery = (d) => (d.kind === 'signal' ? toA(d) : countError('unexpected-broadcast'));
    pairs.push({ room, a, b, aId, bId, seqAB: 0, seqBA: 0, isTurnOfA: true });
  });
}

function sendRelay(k: number): void {
  const pair = pairs[k % pairs.length]!;
  const t = nowUs();
  if (pair.isTurnOfA) pair.a.signal(pair.room, pair.bId, payload(++pair.seqAB, t));
  else pair.b.signal(pair.room, pair.aId, payload(++pair.seqBA, t));
  pair.isTurnOfA = !pair.isTurnOfA;
  relay!.sent++;
  relay!.expected++;
}

interface FanRoom {
  room: string;
  broadcaster: SignalingClient;
  listeners: number;
  seq: number;
}

const fanout = plan.fanout ? new Flow() : undefined;
const fanRooms: FanRoom[] = [];

async function setupFanout(): Promise<number> {
  const f = plan.fanout!;
  return runPool(f.rooms, Math.max(1, Math.floor(plan.connectConcurrency / f.roomSize)), async (i) => {
    const g = f.firstRoom + i;
    const room = `${plan.runId}-f-${g}`;
    const members: SignalingClient[] = [];
    for (let m = 0; m < f.roomSize; m++) members.push(await connect(g + m));
    const ids: string[] = [];
    for (const m of members) ids.push(await m.join(room));
    for (const m of members.slice(1)) {
      const receive = fanout!.receiver(ids[0]!);
      m.onDelivery = (d) => (d.kind === 'broadcast' ? receive(d) : countError('unexpected-signal'));
    }
    members[0]!.onDelivery = (d) => countError(`echo-${d.kind}`);
    fanRooms.push({ room, broadcaster: members[0]!, listeners: f.roomSize - 1, seq: 0 });
  });
}

function sendFanout(k: number): void {
  const r = fanRooms[k % fanRooms.length]!;
  r.broadcaster.broadcast(r.room, payload(++r.seq, nowUs()));
  fanout!.sent++;
  fanout!.expected += r.listeners;
}

// ---- spread: rooms of K over `span` nodes; member 0 signals member 1, the others only listen ----

interface SpreadRoom {
  room: string;
  sender: SignalingClient;
  toId: string;
  seq: number;
}

const spread = plan.spread ? new Flow() : undefined;
const spreadRooms: SpreadRoom[] = [];

async function setupSpread(): Promise<number> {
  const s = plan.spread!;
  return runPool(s.rooms, Math.max(1, Math.floor(plan.connectConcurrency / s.roomSize)), async (i) => {
    const g = s.firstRoom + i;
    const room = `${plan.runId}-s${s.span}-${g}`;
    const members: SignalingClient[] = [];
    for (let m = 0; m < s.roomSize; m++) members.push(await connect(spreadNode(g, m, s.span, plan.urls.length)));
    const ids: string[] = [];
    for (const m of members) ids.push(await m.join(room));
    const receive = spread!.receiver(ids[0]!);
    members[1]!.onDelivery = (d) => (d.kind === 'signal' ? receive(d) : countError('unexpected-broadcast'));
    for (const m of [members[0]!, ...members.slice(2)]) m.onDelivery = (d) => countError(`misrouted-${d.kind}`);
    spreadRooms.push({ room, sender: members[0]!, toId: ids[1]!, seq: 0 });
  });
}

function sendSpread(k: number): void {
  const r = spreadRooms[k % spreadRooms.length]!;
  r.sender.signal(r.room, r.toId, payload(++r.seq, nowUs()));
  spread!.sent++;
  spread!.expected++;
}

// ---- churn: open-loop joins at a fixed rate, each followed by a leave after holdMs ----

const churn = plan.churn
  ? {
      joins: 0,
      leaves: 0,
      failedJoins: 0,
      failedLeaves: 0,
      starved: 0,
      join: new LatencyHistogram(),
      leave: new LatencyHistogram(),
    }
  : undefined;
const churnFree: SignalingClient[] = [];
const holding = new Map<SignalingClient, { room: string; timer: NodeJS.Timeout }>();
let churnInFlight = 0;
let churnIssued = 0;

async function setupChurn(): Promise<number> {
  const c = plan.churn!;
  return runPool(c.clients, plan.connectConcurrency, async (i) => {
    churnFree.push(await connect(c.firstClient + i));
  });
}

function churnLeave(client: SignalingClient, room: string): void {
  holding.delete(client);
  const t0 = nowUs();
  client
    .leave(room)
    .then(
      () => {
        churn!.leaves++;
        if (t0 >= warmEndsUs) churn!.leave.record(nowUs() - t0);
      },
      (err) => {
        churn!.failedLeaves++;
        countError(`leave:${codeOf(err)}`);
      },
    )
    .finally(() => {
      churnInFlight--;
      churnFree.push(client);
      if (isDraining) checkDrained();
    });
}

function churnJoin(): void {
  const client = churnFree.pop();
  if (!client) {
    churn!.starved++;
    return;
  }
  churnInFlight++;
  const room = `${plan.runId}-c-${Math.floor(Math.random() * plan.churn!.rooms)}`;
  const t0 = nowUs();
  client.join(room).then(
    () => {
      churn!.joins++;
      if (t0 >= warmEndsUs) churn!.join.record(nowUs() - t0);
      if (isDraining) return churnLeave(client, room);
      holding.set(client, { room, timer: setTimeout(() => churnLeave(client, room), plan.churn!.holdMs) });
    },
    (err) => {
      churn!.failedJoins++;
      countError(`join:${codeOf(err)}`);
      churnInFlight--;
      churnFree.push(client);
      if (isDraining) checkDrained();
    },
  );
}

// ---- idle: connect and join, then nothing ----

async function setupIdle(): Promise<number> {
  const p = plan.idle!;
  return runPool(p.clients, plan.connectConcurrency, async (i) => {
    const g = p.firstClient + i;
    const c = await connect(0);
    await c.join(`${plan.runId}-i-${Math.floor(g / p.roomSize)}`);
  });
}

// ---- the run ----

let isDraining = false;
let drained: (() => void) | undefined;

function checkDrained(): void {
  const flowsDone = [relay, fanout, spread].every((f) => !f || f.delivered >= f.expected);
  if (flowsDone && churnInFlight === 0) drained?.();
}

function progress(): void {
  const flows = [relay, fanout, spread].filter((f): f is Flow => !!f);
  post({
    type: 'progress',
    sent: flows.reduce((s, f) => s + f.sent, 0),
    delivered: flows.reduce((s, f) => s + f.delivered, 0),
    joins: churn?.joins ?? 0,
    errors: Object.values(errors).reduce((s, n) => s + n, 0),
    interval: interval.snapshot(),
  });
  interval.reset();
}

async function run(warmupMs: number, durationMs: number, drainMs: number): Promise<void> {
  const tickMs = 5;
  const start = nowUs();
  warmEndsUs = start + warmupMs * 1000;
  const endUs = start + (warmupMs + durationMs) * 1000;
  const relayRate = relay && pairs.length ? pairs.length * plan.relay!.ratePerPair : 0;
  const fanRate = fanout && fanRooms.length ? fanRooms.length * plan.fanout!.ratePerRoom : 0;
  const spreadRate = spread && spreadRooms.length ? spreadRooms.length * plan.spread!.ratePerRoom : 0;
  const churnRate = churn ? plan.churn!.joinsPerSecond : 0;
  let maxLagMs = 0;
  let lastTick = start;
  const reporter = setInterval(progress, 1000);

  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = Math.min(nowUs(), endUs);
      maxLagMs = Math.max(maxLagMs, (now - lastTick) / 1000 - tickMs);
      lastTick = now;
      const elapsedS = (now - start) / 1e6;
      // Catch up to the schedule: an open loop that does not wait for the server.
      if (relayRate) for (let due = Math.floor(elapsedS * relayRate); relay!.sent < due;) sendRelay(relay!.sent);
      if (fanRate) for (let due = Math.floor(elapsedS * fanRate); fanout!.sent < due;) sendFanout(fanout!.sent);
      if (spreadRate) for (let due = Math.floor(elapsedS * spreadRate); spread!.sent < due;) sendSpread(spread!.sent);
      if (churnRate) for (let due = Math.floor(elapsedS * churnRate); churnIssued < due; churnIssued++) churnJoin();
      if (now >= endUs) {
        clearInterval(timer);
        resolve();
      }
    }, tickMs);
  });

  isDraining = true;
  for (const [client, h] of holding) {
    clearTimeout(h.timer);
    churnLeave(client, h.room);
  }
  await new Promise<void>((resolve) => {
    const timeout = setTimeout(resolve, drainMs);
    drained = () => {
      clearTimeout(timeout);
      resolve();
    };
    checkDrained();
  });
  clearInterval(reporter);
  progress();
  const churnStats: ChurnStats | undefined = churn && {
    ...churn,
    join: churn.join.snapshot(),
    leave: churn.leave.snapshot(),
  };
  post({
    type: 'done',
    stats: {
      relay: relay?.stats(),
      fanout: fanout?.stats(),
      spread: spread?.stats(),
      churn: churnStats,
      errors,
      maxTimerLagMs: Math.round(maxLagMs),
    },
  });
}

async function setup(): Promise<void> {
  const t0 = Date.now();
  let failed = 0;
  if (plan.relay) failed += await setupRelay();
  if (plan.fanout) failed += await setupFanout();
  if (plan.spread) failed += await setupSpread();
  if (plan.churn) failed += await setupChurn();
  if (plan.idle) failed += await setupIdle();
  post({ type: 'ready', connected: clients.length, failed, setupMs: Date.now() - t0, errors: { ...errors } });
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'start') {
    run(m.warmupMs, m.durationMs, m.drainMs).catch((err: unknown) => post({ type: 'fatal', message: String(err) }));
  } else if (m.type === 'close') {
    for (const c of clients) c.close();
    post({ type: 'closed' });
  }
});

setup().catch((err: unknown) =>
  post({ type: 'fatal', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
);
