// Entry point of the load generator.
//   bench            relay and fan-out against the project (3 nodes) and the Socket.IO baseline
//                    (2 nodes) in one run; writes load-tests/results/<date>.json, .md and charts
//   run <scenario>   one of relay | fanout | churn | idle | soak against one --target
// Run `node --import tsx load-tests/src/cli.ts --help` for the flags.
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, type Cluster, type TargetKind } from './cluster/cluster.js';
import { runLoad, type GeneratorOptions } from './scenarios/engine.js';
import { runIdle } from './scenarios/idle.js';
import { renderBusSummary, runBus, type BusLoad, type BusResult, type RedisKind } from './scenarios/bus.js';
import { PRESETS, idleSpec, loadSpec, spreadSpec, type Settings } from './presets.js';
import { SCENARIOS, type MachineInfo, type RunFile, type ScenarioName, type ScenarioResult } from './results.js';
import { maxOpenFiles } from './procstat.js';
import { renderReport, renderSummary, writeCharts } from './report/markdown.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const SETTING_FLAGS: Record<string, keyof Settings> = {
  warmup: 'warmupS',
  duration: 'durationS',
  drain: 'drainS',
  'soak-duration': 'soakS',
  pairs: 'pairs',
  rate: 'rate',
  rooms: 'rooms',
  'room-size': 'roomSize',
  'fanout-rate': 'fanoutRate',
  'joins-per-second': 'joinsPerSecond',
  'hold-ms': 'holdMs',
  'churn-clients': 'churnClients',
  'churn-rooms': 'churnRooms',
  'spread-rooms': 'spreadRooms',
  'spread-room-size': 'spreadRoomSize',
  'spread-rate': 'spreadRate',
  'spread-nodes': 'spreadNodes',
  connections: 'connections',
  'idle-room-size': 'idleRoomSize',
  settle: 'settleS',
  workers: 'workers',
  sources: 'sources',
  'per-source': 'perSource',
  payload: 'payload',
  concurrency: 'concurrency',
};

const HELP = `usage: node --import tsx load-tests/src/cli.ts <bench | run SCENARIO> [flags]

  bench                      scenarios (default relay,fanout) against every target (default
                             project,floor2,baseline), report written
  run relay|fanout|churn|idle|soak|spread   one scenario against --target (default project)
                             --target floor: a bare uWS relay on one node (relay, fanout),
                             what a delivery costs here before any server logic
                             --target floor2: two bare uWS nodes relaying through Redis (relay,
                             fanout), the floor the project's CPU per delivery is judged against
  run spread                 --spread-nodes project nodes (8) in two arms, rooms of --spread-room-size
                             over 2 nodes and over all of them; member 0 signals member 1,
                             --spread-rate signals/s in all (4000); reports CPU per signal, B/A
  run bus                    the bus alone, one Redis against a local Redis Cluster: see
                             load-tests/src/scenarios/bus.ts. --redis single,cluster (each arm starts its own)
                             --bus-load project|raw (the project's nodes under relay, or bare SPUBLISH)
                             --bus-rate 2000 --bus-rooms 1000 --redis-masters 3 --redis-replicas 0
  report RESULTS.json        write the report and charts of a saved run again [--update-docs]

  --preset small|medium|large   sizes (default small, ~2 min for bench on 2 cores)
  --scenarios a,b  --targets project,floor2,baseline  --target project|baseline|floor|floor2
  --nodes N (project, default 2)  --baseline-nodes N (baseline and floor2, default 2)
  --rounds N                 run relay, fan-out and churn N times (N odd), alternating which target
                             goes first; the targets table compares medians (default 1)
  --cpu-prof                 profile the servers over each measured window (V8 inspector) and add
                             where the time goes to the report; .cpuprofile files in results/tmp/
  --env KEY=VALUE            extra environment for the project's nodes (repeatable)
  --out DIR (default load-tests/results)  --update-docs (rewrite the figures in docs/benchmarks.md)
  --json FILE (run: also write the result)  --quiet
  --redis-url URL  --postgres-url URL  --log-level LEVEL
  sizes: ${Object.keys(SETTING_FLAGS)
    .map((f) => `--${f}`)
    .join(' ')}
`;

function parse() {
  const numeric = Object.fromEntries(Object.keys(SETTING_FLAGS).map((k) => [k, { type: 'string' as const }]));
  return parseArgs({
    allowPositionals: true,
    options: {
      ...numeric,
      preset: { type: 'string', default: 'small' },
      rounds: { type: 'string', default: '1' },
      scenarios: { type: 'string' },
      targets: { type: 'string', default: 'project,floor2,baseline' },
      target: { type: 'string', default: 'project' },
      nodes: { type: 'string', default: '2' },
      'baseline-nodes': { type: 'string', default: '2' },
      'cpu-prof': { type: 'boolean', default: false },
      env: { type: 'string', multiple: true, default: [] },
      out: { type: 'string', default: join(REPO, 'load-tests', 'results') },
      'update-docs': { type: 'boolean', default: false },
      json: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
      'postgres-url': {
        type: 'string',
        default: process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      },
      'log-level': { type: 'string', default: 'info' },
      redis: { type: 'string', default: 'single,cluster' },
      'bus-load': { type: 'string', default: 'project' },
      'bus-rate': { type: 'string', default: '2000' },
      'bus-rooms': { type: 'string', default: '1000' },
      'redis-masters': { type: 'string', default: '3' },
      'redis-replicas': { type: 'string', default: '0' },
      help: { type: 'boolean', default: false },
    },
  });
}

function machineInfo(): MachineInfo {
  let commit: string | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    commit = null;
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    commit,
    fdLimit: maxOpenFiles('self'),
  };
}

function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/:/g, '-')
    .replace(/\.\d+Z$/, 'Z');
}

async function main(): Promise<void> {
  const { values: v, positionals } = parse();
  const [command, scenarioArg] = positionals;
  if (command === 'report' && scenarioArg) {
    rerender(scenarioArg, v['update-docs']);
    return;
  }
  if (v.help || (command !== 'bench' && command !== 'run')) {
    process.stdout.write(HELP);
    process.exitCode = v.help ? 0 : 2;
    return;
  }
  const preset = PRESETS[v.preset];
  if (!preset) throw new Error(`unknown preset ${v.preset}`);
  const settings: Settings = { ...preset };
  for (const [flag, key] of Object.entries(SETTING_FLAGS)) {
    const raw = (v as Record<string, unknown>)[flag];
    if (typeof raw === 'string') {
      const n = Number(raw);
      if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag} needs a number`);
      settings[key] = n;
    }
  }
  const scenarios = (command === 'run' ? [scenarioArg ?? ''] : (v.scenarios ?? 'relay,fanout').split(',')) as ScenarioName[];
  const isBus = command === 'run' && scenarioArg === 'bus';
  for (const s of isBus ? [] : scenarios)
    if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario '${s}' (${SCENARIOS.join(', ')})`);
  const targets = (command === 'run' ? [v.target] : v.targets.split(',')) as TargetKind[];
  for (const t of targets) if (!['project', 'baseline', 'floor', 'floor2'].includes(t)) throw new Error(`unknown target '${t}'`);
  // The report compares the project with the two-node floor and the baseline; the one-node floor
  // is a reference point for `run`. Floors serve relay and fan-out only (no leave, state, resume).
  if (command === 'bench' && targets.includes('floor')) throw new Error('the floor target is for `run` only');
  if (
    command === 'run' &&
    (targets[0] === 'floor' || targets[0] === 'floor2') &&
    scenarios[0] !== 'relay' &&
    scenarios[0] !== 'fanout'
  ) {
    throw new Error('the floor targets run relay and fanout only');
  }
  // In `bench` the floor serves the scenarios it can and sits the others out.
  const targetsOf = (s: ScenarioName) => targets.filter((t) => t !== 'floor2' || s === 'relay' || s === 'fanout');
  if (command === 'run' && scenarios[0] === 'spread' && targets[0] !== 'project')
    throw new Error('spread runs against the project only');
  const rounds = Number(v.rounds);
  // An odd count has a middle round, so every verdict is about a round that was measured.
  if (!Number.isInteger(rounds) || rounds < 1 || rounds % 2 === 0) throw new Error('--rounds needs an odd number (1, 3, 5, …)');

  const startedAt = new Date();
  const runId = `${stamp(startedAt)
    .replace(/[^0-9]/g, '')
    .slice(2, 14)}${process.pid}`;
  const tmpDir = join(v.out, 'tmp', runId);
  const extraEnv = Object.fromEntries(
    v.env.map((kv) => {
      const i = kv.indexOf('=');
      if (i < 1) throw new Error(`--env needs KEY=VALUE, got ${kv}`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  const gen: GeneratorOptions = {
    workers: Math.max(1, settings.workers),
    minSources: settings.sources,
    clientsPerSource: settings.perSource,
    payloadBytes: settings.payload,
    connectConcurrency: Math.max(1, settings.concurrency),
    requestTimeoutMs: 10_000,
    runId,
    redisUrl: v['redis-url'],
    quiet: v.quiet,
    profileDir: v['cpu-prof'] ? join(tmpDir, 'prof') : undefined,
  };
  const clusterOpts = (kind: TargetKind, nodeCount: number, sub: string, prof: boolean) => ({
    repoRoot: REPO,
    runId: `${runId}${sub}`,
    nodeCount,
    logDir: join(tmpDir, `${kind}${sub}`),
    redisUrl: v['redis-url'],
    postgresUrl: v['postgres-url'],
    logLevel: v['log-level'],
    extraEnv,
    isInspectable: prof && v['cpu-prof'],
  });
  const say = (text: string) => v.quiet || process.stderr.write(`${text}\n`);
  if (isBus) {
    const kinds = v.redis.split(',') as RedisKind[];
    for (const k of kinds)
      if (k !== 'single' && k !== 'cluster') throw new Error(`--redis takes single and/or cluster, not '${k}'`);
    const load = v['bus-load'] as BusLoad;
    if (load !== 'raw' && load !== 'project') throw new Error(`--bus-load takes raw or project, not '${load}'`);
    const spec = {
      load,
      rate: Number(v['bus-rate']),
      rooms: Number(v['bus-rooms']),
      masters: Number(v['redis-masters']),
      replicasPerMaster: Number(v['redis-replicas']),
      warmupMs: settings.warmupS * 1000,
      durationMs: settings.durationS * 1000,
      drainMs: settings.drainS * 1000,
      payloadBytes: settings.payload,
    };
    const busResults: BusResult[] = [];
    for (let round = 1; round <= rounds; round++) {
      // Alternating which Redis goes first, as bench alternates its targets.
      for (const redis of round % 2 === 1 ? kinds : [...kinds].reverse()) {
        say(
          `bus: ${load} load on ${redis === 'single' ? 'one Redis' : `a ${spec.masters}-master Redis Cluster`}, ${spec.rate}/s over ${spec.rooms} rooms${rounds > 1 ? ` (round ${round} of ${rounds})` : ''}`,
        );
        const sub = `b${round}${redis[0]}`;
        const project = {
          cluster: { ...clusterOpts('project', Number(v.nodes), sub, false) },
          generator: { ...gen, runId: `${gen.runId}${sub}` },
        };
        busResults.push(await runBus({ ...spec, redis }, project));
        say(renderBusSummary(busResults.slice(-1)));
      }
    }
    process.stdout.write(renderBusSummary(busResults) + '\n');
    if (v.json)
      writeFileSync(
        v.json,
        JSON.stringify({ command: process.argv.slice(2).join(' '), machine: machineInfo(), results: busResults }, null, 2),
      );
    return;
  }
  const nodesOf = (t: TargetKind) => (t === 'floor' ? 1 : Number(t === 'project' ? v.nodes : v['baseline-nodes']));
  const spreadNodes = Math.round(settings.spreadNodes);
  if (scenarios.includes('spread') && spreadNodes < 3)
    throw new Error('--spread-nodes needs 3 or more: its arms compare rooms over 2 nodes with rooms over all');

  say(
    `run ${runId}: ${scenarios.join(', ')} × ${targets.join(', ')} (preset ${v.preset}); logs in ${relative(process.cwd(), tmpDir)}`,
  );
  const results: ScenarioResult[] = [];
  const clusters = new Map<TargetKind, Cluster>();
  const running = new Set<Cluster>();
  const start = async (kind: TargetKind, nodeCount: number, sub: string, prof: boolean) => {
    const c = await startCluster(kind, clusterOpts(kind, nodeCount, sub, prof));
    running.add(c);
    return c;
  };
  const stop = async (c: Cluster) => {
    running.delete(c);
    await c.stop();
  };
  // Ctrl-C stops the servers and drops the database instead of leaving them behind.
  let isInterrupted = false;
  const onSignal = (signal: string) => {
    if (isInterrupted) process.exit(130);
    isInterrupted = true;
    say(`\n${signal}: stopping the servers`);
    void Promise.allSettled([...running].map(stop)).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (scenarios.some((s) => s !== 'idle' && s !== 'spread')) {
      for (const t of new Set(scenarios.filter((s) => s !== 'idle' && s !== 'spread').flatMap(targetsOf))) {
        say(`starting ${t}: ${nodesOf(t)} nodes`);
        clusters.set(t, await start(t, nodesOf(t), '', true));
      }
    }
    for (const scenario of scenarios) {
      if (scenario === 'spread') {
        say(`starting the spread cluster: ${spreadNodes} project nodes`);
        const cluster = await start('project', spreadNodes, 's', true);
        try {
          for (let round = 1; round <= rounds; round++) {
            const roundGen = rounds > 1 ? { ...gen, runId: `${gen.runId}n${round}` } : gen;
            // Both arms on the same nodes, the order alternating as the targets' does.
            const spans = round % 2 === 1 ? [2, spreadNodes] : [spreadNodes, 2];
            for (const span of spans) {
              say(`spread: rooms over ${span} of ${spreadNodes} nodes${rounds > 1 ? ` (round ${round} of ${rounds})` : ''}`);
              const result = await runLoad(spreadSpec(settings, span), cluster, roundGen);
              results.push(rounds > 1 ? { ...result, round } : result);
              if (command === 'bench') say(renderSummary([results.at(-1)!]));
            }
          }
        } finally {
          await stop(cluster);
        }
        continue;
      }
      // Idle and soak are long and measure a trend, not a ratio: they run once.
      const times = scenario === 'idle' || scenario === 'soak' ? 1 : rounds;
      for (let round = 1; round <= times; round++) {
        // Each round its own room names: the clients of the last one are still in their grace period.
        const roundGen = times > 1 ? { ...gen, runId: `${gen.runId}n${round}` } : gen;
        // Alternating the order cancels a drift in the machine's load between the two targets.
        const ts = targetsOf(scenario);
        for (const t of round % 2 === 1 ? ts : [...ts].reverse()) {
          say(`${scenario} → ${t}${times > 1 ? ` (round ${round} of ${times})` : ''}`);
          let result: ScenarioResult;
          if (scenario === 'idle') {
            // A fresh single node, so its memory is that of the idle connections alone.
            const single = await start(t, 1, 'i', false);
            try {
              result = await runIdle(idleSpec(settings), single, roundGen);
            } finally {
              await stop(single);
            }
          } else {
            result = await runLoad(
              loadSpec(scenario as Exclude<ScenarioName, 'idle' | 'spread'>, settings),
              clusters.get(t)!,
              roundGen,
            );
          }
          results.push(times > 1 ? { ...result, round } : result);
          if (command === 'bench') say(renderSummary([results.at(-1)!]));
        }
      }
    }
  } finally {
    await Promise.all([...running].map(stop));
  }

  const run: RunFile = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    preset: v.preset,
    command: process.argv.slice(2).join(' '),
    machine: machineInfo(),
    results,
  };

  if (command === 'run') {
    process.stdout.write(renderSummary(results) + '\n');
    if (v.json) writeFileSync(v.json, JSON.stringify(run, null, 2));
    return;
  }
  mkdirSync(v.out, { recursive: true });
  const base = stamp(startedAt);
  writeFileSync(join(v.out, `${base}.json`), JSON.stringify(run, null, 2) + '\n');
  const charts = writeCharts(run, v.out, base);
  const report = renderReport(run, charts, '.');
  writeFileSync(join(v.out, `${base}.md`), report);
  say(
    `\nwrote ${relative(process.cwd(), join(v.out, `${base}.json`))} and ${relative(process.cwd(), join(v.out, `${base}.md`))}`,
  );
  if (v['update-docs']) updateDocs(run, charts, v.out);
  process.stdout.write(renderSummary(results) + '\n');
}

/** Writes the report and charts of a saved run again (after a change to the report's code). */
function rerender(jsonFile: string, shouldUpdateDocs: boolean): void {
  const run = JSON.parse(readFileSync(jsonFile, 'utf8')) as RunFile;
  const dir = dirname(resolve(jsonFile));
  const base = basename(jsonFile, '.json');
  const charts = writeCharts(run, dir, base);
  writeFileSync(join(dir, `${base}.md`), renderReport(run, charts, '.'));
  if (shouldUpdateDocs) updateDocs(run, charts, dir);
  process.stderr.write(`wrote ${relative(process.cwd(), join(dir, `${base}.md`))}\n`);
}

/** Replaces the text between the bench markers of docs/benchmarks.md with this run's figures. */
function updateDocs(run: RunFile, charts: string[], outDir: string): void {
  const doc = join(REPO, 'docs', 'benchmarks.md');
  if (!existsSync(doc)) return;
  const text = readFileSync(doc, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) return;
  const body = renderReport(run, charts, relative(join(REPO, 'docs'), outDir), { headingLevel: 3 });
  writeFileSync(doc, `${text.slice(0, a + start.length)}\n${body}\n${text.slice(b)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
