// Turns a run into what people read: a console summary, SVG charts, and a Markdown report with
// the project beside the baseline and each target of the issue marked met or missed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { barChart, COLORS, fmt, lineChart } from './svg.js';
import type { FlowResult, RunFile, ScenarioName, ScenarioResult } from '../results.js';
import type { TargetKind } from '../cluster/cluster.js';

const KiB = 1024;
const MiB = 2 ** 20;

function flowOf(r: ScenarioResult): FlowResult | undefined {
  if (r.scenario === 'spread') return r.spread;
  return r.scenario === 'fanout' ? r.fanout : r.relay;
}

export function renderSummary(results: ScenarioResult[]): string {
  return results
    .map((r) => {
      const head = `${r.scenario}/${r.target}${r.round ? ` #${r.round}` : ''}`.padEnd(18);
      if (r.idle) {
        const i = r.idle;
        return (
          `${head} ${i.connected}/${i.attempted} joined idle, ${i.failed} failed, RSS +${((i.rssAfterBytes - i.rssBeforeBytes) / MiB).toFixed(1)} MiB = ${i.bytesPerConnection ?? '-'} B/connection, ${i.marginalBytesPerConnection ?? '-'} B marginal` +
          (i.capReason ? `  (capped: ${i.capReason})` : '')
        );
      }
      const parts: string[] = [];
      for (const [name, f] of [
        ['relay', r.relay],
        ['fanout', r.fanout],
        ['spread', r.spread],
      ] as const) {
        if (!f) continue;
        const l = f.latencyMs;
        parts.push(
          `${r.scenario === 'soak' ? name + ': ' : ''}delivered ${f.delivered}/${f.expected} lost ${f.lost}  p50 ${l.p50} p90 ${l.p90} p99 ${l.p99} max ${l.max} ms  ${f.throughputPerS}/s`,
        );
      }
      if (r.churn) {
        const c = r.churn;
        parts.push(
          `joins ${c.joins} (${c.joinsPerS}/s, failed ${c.failedJoins}, starved ${c.starved})  join p50 ${c.joinMs.p50} p99 ${c.joinMs.p99} max ${c.joinMs.max} ms`,
        );
      }
      if (r.soak) parts.push(`RSS slope ${r.soak.rssSlopeMiBPerMin} MiB/min, max lag p99 ${r.soak.maxLagP99Ms ?? '-'} ms`);
      const span = r.scenario === 'spread' ? `rooms over ${r.params.span} nodes: ` : '';
      const withRedis = r.cpu.perThousandDeliveriesWithRedis ? ` (${r.cpu.perThousandDeliveriesWithRedis} with Redis)` : '';
      const cpu =
        r.cpu.perThousandDeliveries !== null
          ? `  cpu ${r.cpu.perThousandDeliveries}${withRedis} s/1k deliveries`
          : r.cpu.perThousandJoins !== null
            ? `  cpu ${r.cpu.perThousandJoins} s/1k joins`
            : '';
      const errs = Object.entries(r.errors)
        .map(([k, v]) => `${k}:${v}`)
        .join(' ');
      return `${head} ${span}${parts.join(' | ')}${cpu}${errs ? `  errors ${errs}` : ''}`;
    })
    .join('\n');
}

/** Every result of one scenario against one target: one per round of `bench --rounds`. */
function roundsOf(run: RunFile, scenario: ScenarioName, target: TargetKind): ScenarioResult[] {
  return run.results.filter((r) => r.scenario === scenario && r.target === target);
}

/** CPU seconds per 1,000 deliveries of the servers and Redis, as issue #15 measures; servers alone when Redis's is unknown. */
export function deliveryCpu(r: ScenarioResult): number | null {
  return r.cpu.perThousandDeliveriesWithRedis ?? r.cpu.perThousandDeliveries;
}

/** The CPU figure a scenario is judged by: per delivery, or per join for churn; null if none. */
function cpuFigure(r: ScenarioResult): number | null {
  return deliveryCpu(r) ?? r.cpu.perThousandJoins;
}

/** The spread scenario's two arms: CPU per 1k signals with rooms over 2 nodes and over all of them. */
function spreadArms(run: RunFile): { narrow: number[]; wide: number[]; nodes: number; results: ScenarioResult[] } | undefined {
  const results = run.results.filter((r) => r.scenario === 'spread');
  const nodes = Math.max(0, ...results.map((r) => Number(r.params.span)));
  const of = (span: number) =>
    results
      .filter((r) => Number(r.params.span) === span)
      .map(deliveryCpu)
      .filter((x): x is number => !!x);
  const [narrow, wide] = [of(2), of(nodes)];
  return narrow.length && wide.length && nodes > 2 ? { narrow, wide, nodes, results } : undefined;
}

/** The lower median: with an even count it is a value that was measured, not an average. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** The round the tables and charts show: the one with the median CPU figure, among those with one. */
function find(run: RunFile, scenario: ScenarioName, target: TargetKind): ScenarioResult | undefined {
  const all = roundsOf(run, scenario, target);
  const measured = all.filter((r) => cpuFigure(r) !== null);
  if (measured.length <= 1) return measured[0] ?? all[0];
  const m = median(measured.map((r) => cpuFigure(r)!));
  return measured.find((r) => cpuFigure(r) === m);
}

/** ` [N rounds: min–max]` for a figure measured in several rounds, nothing for one. */
function spread(values: number[]): string {
  if (values.length <= 1) return '';
  return ` [${values.length} rounds: ${fmt(Math.min(...values))}–${fmt(Math.max(...values))}]`;
}

const TARGETS = ['project', 'floor2', 'baseline'] as const;
const TARGET_TITLES: Record<(typeof TARGETS)[number], string> = {
  project: 'project',
  floor2: 'two-node floor (bare uWS + Redis)',
  baseline: 'baseline (Socket.IO + Redis adapter)',
};

/** Writes the charts next to the report; returns their file names. */
export function writeCharts(run: RunFile, dir: string, base: string): string[] {
  const files: string[] = [];
  const write = (name: string, svg: string) => {
    writeFileSync(join(dir, `${base}-${name}.svg`), svg);
    files.push(`${base}-${name}.svg`);
  };
  for (const scenario of ['relay', 'fanout'] as const) {
    const present = TARGETS.filter((t) => find(run, scenario, t));
    if (!present.length) continue;
    write(
      `${scenario}-latency`,
      barChart({
        title: `${scenario === 'relay' ? 'Relay' : 'Fan-out'}: delivery latency`,
        unit: 'ms',
        isLog: true,
        categories: ['p50', 'p90', 'p99', 'max'],
        series: present.map((t) => {
          const l = flowOf(find(run, scenario, t)!)?.latencyMs;
          return { name: t, color: COLORS[t], values: l ? [l.p50, l.p90, l.p99, l.max] : [null, null, null, null] };
        }),
      }),
    );
  }
  const cpuScenarios = (['relay', 'fanout'] as const).filter((s) => TARGETS.some((t) => find(run, s, t)));
  if (cpuScenarios.length) {
    write(
      'cpu',
      barChart({
        title: 'Server CPU seconds per 1,000 deliveries (lower is better)',
        unit: 'CPU s / 1k deliveries',
        categories: cpuScenarios.map((s) => (s === 'relay' ? 'relay' : 'fan-out')),
        series: TARGETS.filter((t) => cpuScenarios.some((s) => find(run, s, t))).map((t) => ({
          name: t,
          color: COLORS[t],
          values: cpuScenarios.map((s) => find(run, s, t)?.cpu.perThousandDeliveries ?? null),
        })),
      }),
    );
  }
  const soaks = TARGETS.map((t) => find(run, 'soak', t)).filter((r): r is ScenarioResult => !!r?.soak);
  if (soaks.length) {
    write(
      'soak-rss',
      lineChart({
        title: 'Soak: resident memory of all nodes',
        unit: 'MiB',
        xUnit: 'seconds',
        series: soaks.map((r) => ({
          name: r.target,
          color: COLORS[r.target],
          points: r.soak!.samples.map((s) => [s.atS, s.rssBytes.reduce((a, b) => a + b, 0) / MiB] as [number, number]),
        })),
      }),
    );
  }
  return files;
}

type Status = 'met' | 'missed' | 'not run' | 'partly measured';
const mark: Record<Status, string> = {
  met: '✅ met',
  missed: '❌ missed',
  'not run': '— not run',
  'partly measured': '⚠️ partly measured',
};

export function evaluateTargets(run: RunFile): Array<{ target: string; measured: string; status: Status }> {
  const rows: Array<{ target: string; measured: string; status: Status }> = [];
  // With several rounds every comparison is between medians, and the range of each side is shown.
  const cpus = (s: ScenarioName, t: TargetKind) =>
    roundsOf(run, s, t)
      .map(deliveryCpu)
      .filter((x): x is number => !!x);
  for (const s of ['relay', 'fanout'] as const) {
    const [pcs, fcs, bcs] = [cpus(s, 'project'), cpus(s, 'floor2'), cpus(s, 'baseline')];
    const vsFloor = `${s}: CPU per delivery (servers + Redis) ≤ 1.2× the two-node floor's`;
    if (!pcs.length || !fcs.length) rows.push({ target: vsFloor, measured: '', status: 'not run' });
    else {
      const [pc, fc] = [median(pcs), median(fcs)];
      rows.push({
        target: vsFloor,
        measured: `${fmt(pc)}${spread(pcs)} vs ${fmt(fc)}${spread(fcs)} s/1k (project/floor2 ${(pc / fc).toFixed(2)}×)`,
        status: pc <= 1.2 * fc ? 'met' : 'missed',
      });
    }
    const vsBaseline = `${s}: CPU per delivery (servers + Redis) ≥ 1.75× better than the baseline's`;
    if (!pcs.length || !bcs.length) rows.push({ target: vsBaseline, measured: '', status: 'not run' });
    else {
      const [pc, bc] = [median(pcs), median(bcs)];
      rows.push({
        target: vsBaseline,
        measured: `${fmt(pc)}${spread(pcs)} vs ${fmt(bc)}${spread(bcs)} s/1k (Socket.IO/project ${(bc / pc).toFixed(2)}×)`,
        status: bc >= 1.75 * pc ? 'met' : 'missed',
      });
    }
  }
  const spreadTarget = 'spread: CPU per signal (servers + Redis), rooms over all nodes ≤ 1.1× rooms over 2';
  const arms = spreadArms(run);
  if (!arms) rows.push({ target: spreadTarget, measured: '', status: 'not run' });
  else {
    const [a, b] = [median(arms.narrow), median(arms.wide)];
    const lostSignals = arms.results.reduce((n, r) => n + (r.spread?.lost ?? 0), 0);
    rows.push({
      target: spreadTarget,
      measured: `${fmt(b)}${spread(arms.wide)} over ${arms.nodes} vs ${fmt(a)}${spread(arms.narrow)} over 2 s/1k (B/A ${(b / a).toFixed(2)}×), ${lostSignals} lost`,
      status: b <= 1.1 * a && lostSignals === 0 ? 'met' : 'missed',
    });
  }
  const lost = (['relay', 'fanout'] as const).flatMap((s) => roundsOf(run, s, 'project'));
  const lostOf = (s: ScenarioName) => {
    const flows = lost.filter((r) => r.scenario === s).map((r) => flowOf(r));
    return `${s} ${flows.reduce((n, f) => n + (f?.lost ?? 0), 0)} of ${flows.reduce((n, f) => n + (f?.expected ?? 0), 0)}`;
  };
  rows.push(
    lost.length
      ? {
          target: 'no message lost (project, relay and fan-out)',
          measured: [...new Set(lost.map((r) => r.scenario))].map(lostOf).join(', '),
          status: lost.every((r) => flowOf(r)?.lost === 0 && (flowOf(r)?.expected ?? 0) > 0) ? 'met' : 'missed',
        }
      : { target: 'no message lost (project, relay and fan-out)', measured: '', status: 'not run' },
  );
  const p99s = (t: TargetKind) => roundsOf(run, 'relay', t).flatMap((r) => (r.relay ? [r.relay.latencyMs.p99] : []));
  const [prs, brs] = [p99s('project'), p99s('baseline')];
  if (prs.length && brs.length) {
    const [pr, br] = [median(prs), median(brs)];
    rows.push({
      target: "relay p99 below the baseline's",
      measured: `${fmt(pr)}${spread(prs)} ms vs ${fmt(br)}${spread(brs)} ms`,
      status: pr < br ? 'met' : 'missed',
    });
  } else {
    rows.push({ target: "relay p99 below the baseline's", measured: '', status: 'not run' });
  }
  const idle = find(run, 'idle', 'project')?.idle;
  if (!idle)
    rows.push({ target: 'one node holds 50,000 idle joined connections, ≤ 4 KiB RSS each', measured: '', status: 'not run' });
  else {
    const perConn = idle.bytesPerConnection ?? Number.POSITIVE_INFINITY;
    const held = idle.connected >= 50_000 && idle.failed === 0;
    let measured = `${idle.connected} of ${idle.attempted} held (${idle.requested} requested), ${fmt(perConn / KiB)} KiB each`;
    const marginal = idle.marginalBytesPerConnection;
    if (marginal !== undefined && marginal !== null) {
      measured += ` (${fmt(marginal / KiB)} KiB marginal)`;
      if (idle.connected < 50_000) {
        // A projection, labelled as one: the fill stopped short, so extend it at the marginal cost.
        const projected = (idle.rssAfterBytes + marginal * (50_000 - idle.connected) - idle.rssBeforeBytes) / 50_000;
        measured += `; at 50,000 that projects to ${fmt(projected / KiB)} KiB each`;
      }
    }
    let status: Status = held && perConn <= 4 * KiB ? 'met' : 'missed';
    if (!held && idle.capReason && idle.failed === 0 && perConn <= 4 * KiB) status = 'partly measured';
    rows.push({ target: 'one node holds 50,000 idle joined connections, ≤ 4 KiB RSS each', measured, status });
  }
  const churns = roundsOf(run, 'churn', 'project').flatMap((r) =>
    r.churn ? [{ c: r.churn, offered: Number(r.params.joinsPerSecond) }] : [],
  );
  if (!churns.length) rows.push({ target: 'join p99 < 10 ms at 500 joins/s through Postgres', measured: '', status: 'not run' });
  else {
    const p99 = churns.map(({ c }) => c.joinMs.p99);
    const rate = churns.map(({ c }) => c.joinsPerS);
    const failed = churns.reduce((n, { c }) => n + c.failedJoins, 0);
    const offered = churns[0]!.offered;
    const keptUp = median(rate) >= offered * 0.95 && failed === 0;
    rows.push({
      target: 'join p99 < 10 ms at 500 joins/s through Postgres',
      measured: `p99 ${fmt(median(p99))}${spread(p99)} ms at ${median(rate)}${spread(rate)} joins/s (offered ${offered}), ${failed} failed`,
      status: keptUp && offered >= 500 && median(p99) < 10 ? 'met' : 'missed',
    });
  }
  return rows;
}

function flowTable(run: RunFile, scenario: 'relay' | 'fanout'): string {
  const present = TARGETS.filter((t) => find(run, scenario, t));
  const cols = present.map((t) => find(run, scenario, t));
  const row = (label: string, f: (r: ScenarioResult) => string) =>
    `| ${label} | ${cols.map((r) => (r ? f(r) : '—')).join(' | ')} |`;
  const fl = (r: ScenarioResult) => flowOf(r)!;
  const params = cols.find((r) => r)?.params ?? {};
  return [
    Object.entries(params)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
    '',
    `| | ${present.map((t) => TARGET_TITLES[t]).join(' | ')} |`,
    `|---|${present.map(() => '---:').join('|')}|`,
    row('nodes', (r) => String(r.nodes)),
    row('clients connected (failed)', (r) => `${r.setup.connected} (${r.setup.failed})`),
    row('delivered / due', (r) => `${fl(r).delivered} / ${fl(r).expected}`),
    row('lost', (r) => String(fl(r).lost)),
    row('out of order', (r) => String(fl(r).outOfOrder)),
    row('throughput (deliveries/s)', (r) => String(fl(r).throughputPerS)),
    row('latency p50 (ms)', (r) => fmt(fl(r).latencyMs.p50)),
    row('latency p90 (ms)', (r) => fmt(fl(r).latencyMs.p90)),
    row('latency p99 (ms)', (r) => fmt(fl(r).latencyMs.p99)),
    row('latency max (ms)', (r) => fmt(fl(r).latencyMs.max)),
    row('**server CPU s per 1k deliveries**', (r) => `**${r.cpu.perThousandDeliveries ?? '—'}**`),
    row('**server + Redis CPU s per 1k deliveries**', (r) => `**${r.cpu.perThousandDeliveriesWithRedis ?? '—'}**`),
    row('server CPU s (per node)', (r) => `${r.cpu.serverSeconds} (${r.cpu.perNodeSeconds.join(', ')})`),
    row('Redis CPU s (shared server)', (r) => String(r.cpu.redisSeconds ?? '—')),
    row('Postgres CPU s (this database)', (r) => String(r.cpu.postgresSeconds ?? '—')),
    row('generator CPU s', (r) => String(r.cpu.generatorSeconds)),
    row('server RSS after (MiB)', (r) => r.rssBytes.after.map((b) => (b / MiB).toFixed(0)).join(', ')),
    row('generator timer lag max (ms)', (r) => String(r.maxTimerLagMs)),
    row(
      'errors',
      (r) =>
        Object.entries(r.errors)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || '0',
    ),
  ].join('\n');
}

export function renderReport(run: RunFile, charts: string[], chartDir: string, opts: { headingLevel?: number } = {}): string {
  const h = (n: number) => '#'.repeat((opts.headingLevel ?? 1) + n - 1);
  const img = (suffix: string, alt: string) => {
    const f = charts.find((c) => c.endsWith(`-${suffix}.svg`));
    return f ? `![${alt}](${chartDir}/${f})\n` : '';
  };
  const m = run.machine;
  const out: string[] = [];
  out.push(`${h(1)} Signaling benchmark, ${run.startedAt.slice(0, 16).replace('T', ' ')} UTC`);
  out.push('');
  out.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores (shared with other work), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, open-files limit ${m.fdLimit}. ` +
      `Commit ${m.commit ?? 'unknown'}. Preset \`${run.preset}\`; command \`${run.command}\`.`,
  );
  out.push('');
  const rounds = Math.max(...run.results.map((r) => r.round ?? 1));
  if (rounds > 1) {
    out.push(
      `Relay, fan-out and churn ran ${rounds} times, alternating which target went first. The targets compare medians, ` +
        'with the range of each side in brackets; the tables and charts show the round with the median CPU figure.',
      '',
    );
  }
  out.push(`${h(2)} Targets`);
  out.push('');
  out.push('| target | measured | |');
  out.push('|---|---|---|');
  for (const t of evaluateTargets(run)) out.push(`| ${t.target} | ${t.measured || '—'} | ${mark[t.status]} |`);
  out.push('');
  for (const s of ['relay', 'fanout'] as const) {
    if (!TARGETS.some((t) => find(run, s, t))) continue;
    out.push(
      `${h(2)} ${s === 'relay' ? 'Relay: pairs on different nodes' : 'Fan-out: rooms across nodes, one broadcaster each'}`,
    );
    out.push('');
    out.push(flowTable(run, s));
    out.push('');
    out.push(img(`${s}-latency`, `${s} latency percentiles, project beside baseline`));
  }
  const arms = spreadArms(run);
  if (arms) {
    const shown = [2, arms.nodes].map((span) => {
      const all = arms.results.filter((r) => Number(r.params.span) === span);
      const m = median(all.map((r) => deliveryCpu(r) ?? Number.POSITIVE_INFINITY));
      return all.find((r) => deliveryCpu(r) === m) ?? all[0]!;
    });
    const p = shown[0]!.params;
    out.push(`${h(2)} Spread: rooms over 2 nodes and over ${arms.nodes}`, '');
    out.push(
      `${p.nodes} project nodes in both arms, ${p.rooms} rooms of ${p.roomSize}, member 0 signalling member 1, ${p.offeredPerS} signals/s offered.`,
      '',
    );
    out.push(
      '| rooms over | delivered / due | lost | p50 | p99 (ms) | server CPU s | Redis CPU s | server + Redis CPU s / 1k signals |',
    );
    out.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of shown) {
      const f = r.spread!;
      out.push(
        `| ${r.params.span} nodes | ${f.delivered} / ${f.expected} | ${f.lost} | ${fmt(f.latencyMs.p50)} | ${fmt(f.latencyMs.p99)} | ${r.cpu.serverSeconds} | ${r.cpu.redisSeconds ?? '—'} | ${deliveryCpu(r) ?? '—'} |`,
      );
    }
    out.push('');
  }
  const cpu = img('cpu', 'server CPU per 1,000 deliveries, project beside the floor and the baseline');
  if (cpu) out.push(`${h(2)} CPU per delivery`, '', cpu);
  const churns = TARGETS.map((t) => find(run, 'churn', t)).filter((r): r is ScenarioResult => !!r?.churn);
  if (churns.length) {
    out.push(`${h(2)} Join churn`, '');
    out.push(
      Object.entries(churns[0]!.params)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
      '',
    );
    out.push(
      '| target | joins/s | join p50 | p90 | p99 | max (ms) | leave p99 (ms) | failed | starved | server CPU s / 1k joins | Postgres CPU s |',
    );
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of churns) {
      const c = r.churn!;
      out.push(
        `| ${r.target} | ${c.joinsPerS} | ${fmt(c.joinMs.p50)} | ${fmt(c.joinMs.p90)} | ${fmt(c.joinMs.p99)} | ${fmt(c.joinMs.max)} | ${fmt(c.leaveMs.p99)} | ${c.failedJoins} | ${c.starved} | ${r.cpu.perThousandJoins ?? '—'} | ${r.cpu.postgresSeconds ?? '—'} |`,
      );
    }
    out.push('', 'The baseline keeps rooms in memory and Redis only; the project stores every join in Postgres.', '');
  }
  const idles = TARGETS.map((t) => find(run, 'idle', t)).filter((r): r is ScenarioResult => !!r?.idle);
  if (idles.length) {
    out.push(`${h(2)} Idle capacity of one node`, '');
    out.push(
      '| target | held / attempted (requested) | failed | RSS before → half → after (MiB) | per connection (average) | marginal (second half) | joins/s while filling |',
    );
    out.push('|---|---:|---:|---:|---:|---:|---:|');
    const kib = (b: number | null | undefined) => (b === null || b === undefined ? '—' : `${fmt(b / KiB)} KiB`);
    for (const r of idles) {
      const i = r.idle!;
      const half = i.rssHalfBytes === undefined ? '' : ` → ${(i.rssHalfBytes / MiB).toFixed(0)}`;
      out.push(
        `| ${r.target} | ${i.connected} / ${i.attempted} (${i.requested}) | ${i.failed} | ${(i.rssBeforeBytes / MiB).toFixed(0)}${half} → ${(i.rssAfterBytes / MiB).toFixed(0)} | ${kib(i.bytesPerConnection)} | ${kib(i.marginalBytesPerConnection)} | ${i.joinsPerS} |`,
      );
    }
    out.push(
      '',
      "Average = (RSS after − before) / connections, a cold node's one-off growth included; marginal = what the second half of the connections added, per connection.",
    );
    for (const r of idles)
      if (r.idle!.capReason) out.push('', `${r.target}: fewer connections than requested — ${r.idle!.capReason}.`);
    out.push('');
  }
  const soaks = TARGETS.map((t) => find(run, 'soak', t)).filter((r): r is ScenarioResult => !!r?.soak);
  if (soaks.length) {
    out.push(`${h(2)} Soak`, '');
    out.push(
      '| target | duration (s) | relay p99 | fan-out p99 | join p99 (ms) | lost | RSS start → end (MiB) | RSS slope, 2nd half (MiB/min) | max event-loop lag p99 (ms) |',
    );
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of soaks) {
      const s = r.soak!;
      const sum = (a: number[]) => a.reduce((x, y) => x + y, 0) / MiB;
      const first = s.samples[0]?.rssBytes ?? r.rssBytes.before;
      out.push(
        `| ${r.target} | ${r.params.durationS} | ${r.relay ? fmt(r.relay.latencyMs.p99) : '—'} | ${r.fanout ? fmt(r.fanout.latencyMs.p99) : '—'} | ${r.churn ? fmt(r.churn.joinMs.p99) : '—'} | ${(r.relay?.lost ?? 0) + (r.fanout?.lost ?? 0)} | ${sum(first).toFixed(0)} → ${sum(r.rssBytes.after).toFixed(0)} | ${s.rssSlopeMiBPerMin} | ${s.maxLagP99Ms === null ? '—' : fmt(s.maxLagP99Ms)} |`,
      );
    }
    out.push('', img('soak-rss', 'soak: resident memory over time'));
  }
  const profiled = run.results.filter((r) => r.profile && r.profile.totalMs > 0);
  if (profiled.length) {
    out.push(`${h(2)} Where the server time goes (--cpu-prof, measured windows only)`, '');
    out.push('Profiling slows the servers down: take latencies and CPU figures from a run without `--cpu-prof`.', '');
    for (const r of profiled) {
      const p = r.profile!;
      out.push(`${h(3)} ${r.scenario} / ${r.target}${r.round ? `, round ${r.round}` : ''}`, '');
      out.push(
        `${(p.busyMs / 1000).toFixed(1)} s busy of ${(p.totalMs / 1000).toFixed(1)} s sampled, over ${r.nodes} nodes.`,
        '',
      );
      out.push('| self time by package or file | ms | % of busy |', '|---|---:|---:|');
      for (const e of p.byPackage.slice(0, 10)) out.push(`| ${e.pkg} | ${e.selfMs} | ${e.selfPct} |`);
      out.push('', '| function (self time) | where | ms | % of busy |', '|---|---|---:|---:|');
      for (const e of p.top) out.push(`| \`${e.fn}\` | ${e.where} | ${e.selfMs} | ${e.selfPct} |`);
      if (p.appInclusive.length) {
        out.push('', '| application function (inclusive: self + callees) | where | ms | % of busy |', '|---|---|---:|---:|');
        for (const e of p.appInclusive) out.push(`| \`${e.fn}\` | ${e.where} | ${e.selfMs} | ${e.selfPct} |`);
      }
      out.push('');
    }
  }
  if (opts.headingLevel !== undefined) return out.join('\n'); // docs/benchmarks.md explains the method itself
  out.push(`${h(2)} How this was measured`, '');
  out.push(
    'Clients run in worker threads of one generator process, spread over 127.x.y.z source addresses. Sender and receiver of every message live in the same ' +
      'process and stamp and read one monotonic clock, so latency is end to end: client → node → Redis → node → client. The load is open-loop at a fixed offered ' +
      'rate after a warm-up that is left out of latencies and CPU. CPU is utime + stime of the server processes from /proc over the measured window (through the drain), ' +
      'divided by the deliveries in it; it stays comparable on a shared machine where wall-clock figures do not. "Lost" counts deliveries still missing when the drain ' +
      'ended. See docs/benchmarks.md.',
  );
  out.push('');
  return out.join('\n');
}
