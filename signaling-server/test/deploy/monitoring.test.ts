// The monitoring configuration names only metrics the server really exports: every series in the
// alerts, the Grafana dashboard, the prometheus-adapter rules and the HPA is checked against the
// registry of signaling-server/src/metrics.ts, so a renamed metric breaks this test, not a pager.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');

/** Series the cluster's other exporters provide (kube-state-metrics, Prometheus itself). */
const EXTERNAL = new Set([
  'up',
  'kube_horizontalpodautoscaler_status_current_replicas',
  'kube_horizontalpodautoscaler_spec_max_replicas',
]);

/** The metric families the deployment contract names (dashboards, alerts and the HPA rely on them). */
const CONTRACT = [
  'signaling_connections',
  'signaling_participants',
  'signaling_rooms',
  'signaling_messages_received_total',
  'signaling_deliveries_total',
  'signaling_errors_total',
  'signaling_dropped_total',
  'signaling_bus_publish_seconds',
  'signaling_db_query_seconds',
  'signaling_join_seconds',
  'signaling_bus_up',
  'signaling_db_up',
  'signaling_draining',
  'signaling_bus_gaps_total',
  'signaling_bus_recovered_total',
];

/** Metric families of the registry, and every series name they expose. */
let families: { name: string; histogram: boolean }[];
let exported: Set<string>;

beforeAll(async () => {
  const registry = createMetrics().registry;
  families = (await registry.getMetricsAsJSON()).map((m) => ({ name: m.name, histogram: String(m.type) === 'histogram' }));
  exported = new Set(families.flatMap((f) => (f.histogram ? ['_bucket', '_sum', '_count'].map((s) => f.name + s) : [f.name])));
});

/** Metric names in a PromQL expression: identifiers followed by a selector, a range or a boundary, minus functions and keywords. */
function seriesIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const withoutMatchers = withoutStrings.replace(/\{[^}]*\}/g, '{}');
  const words = withoutMatchers.match(/\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()/g) ?? [];
  const keywords = new Set([
    'by',
    'without',
    'on',
    'ignoring',
    'group_left',
    'group_right',
    'and',
    'or',
    'unless',
    'bool',
    'offset',
    'le',
  ]);
  // Durations such as [5m] leave `m`; grouping labels sit inside by (...), which the caller strips.
  return words.filter((w) => w === 'up' || (w.includes('_') && !keywords.has(w)));
}

function stripGroupings(expr: string): string {
  return expr.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1');
}

function unknownSeries(expr: string): string[] {
  return seriesIn(stripGroupings(expr.replace(/\$__rate_interval/g, '5m'))).filter((s) => !exported.has(s) && !EXTERNAL.has(s));
}

describe('metric names in the deployment configuration', () => {
  it('the registry exports every family of the metrics contract', () => {
    expect(CONTRACT.filter((name) => !families.some((f) => f.name === name))).toEqual([]);
  });

  it('every alert expression uses only exported series', () => {
    const rule = parse(read('k8s/base/prometheusrule.yaml')) as Obj;
    const rules = (rule.spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
    expect(rules.length).toBeGreaterThan(0);
    for (const r of rules) {
      expect(seriesIn(stripGroupings(String(r.expr))).length, r.alert).toBeGreaterThan(0);
      expect(unknownSeries(String(r.expr)), r.alert).toEqual([]);
    }
  });

  it('every alert has a row in the runbook of docs/operations.md', () => {
    const rule = parse(read('k8s/base/prometheusrule.yaml')) as Obj;
    const alerts = (rule.spec.groups as Obj[]).flatMap((g) => (g.rules as Obj[]).map((r) => String(r.alert)));
    const rows = new Set([...read('docs/operations.md').matchAll(/^\| `(Signaling\w+)` \|/gm)].map((m) => m[1]));
    expect(alerts.filter((alert) => !rows.has(alert))).toEqual([]);
  });

  it('every Grafana panel queries only exported series', () => {
    const dashboard = JSON.parse(read('k8s/base/dashboards/signaling.json')) as Obj;
    const exprs = (dashboard.panels as Obj[]).flatMap((p) => ((p.targets ?? []) as Obj[]).map((t) => String(t.expr)));
    const variables = (dashboard.templating.list as Obj[]).filter((v) => v.type === 'query').map((v) => String(v.definition));
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    for (const expr of [...exprs, ...variables.map((v) => v.replace(/^label_values\((.*),\s*\w+\)$/, '$1'))]) {
      expect(unknownSeries(expr), expr).toEqual([]);
    }
    // Every family of the metrics contract has a panel.
    const shown = new Set(exprs.flatMap((e) => seriesIn(stripGroupings(e.replace(/\$__rate_interval/g, '5m')))));
    const missing = families
      .filter((f) => CONTRACT.includes(f.name))
      .filter((f) => !shown.has(f.histogram ? `${f.name}_bucket` : f.name))
      .map((f) => f.name);
    expect(missing).toEqual([]);
  });

  it('prometheus-adapter serves signaling_connections per pod under the name the HPA asks for', () => {
    const values = parse(read('k8s/prometheus-adapter/values.yaml')) as Obj;
    const hpa = parse(read('k8s/base/hpa.yaml')) as Obj;
    const wanted = (hpa.spec.metrics as Obj[]).find((m) => m.type === 'Pods')?.pods.metric.name as string;
    const rules = values.rules.custom as Obj[];
    const rule = rules.find((r) => new RegExp(r.name.matches).test(wanted) && (r.name.as ?? wanted) === wanted);
    expect(rule, `an adapter rule exposing ${wanted}`).toBeDefined();
    expect(unknownSeries(rule!.seriesQuery)).toEqual([]);
    expect(seriesIn(rule!.seriesQuery)).toEqual([wanted]);
    // The HPA asks for the metric of each pod in its namespace: both labels must map to resources.
    expect(rule!.resources.overrides).toEqual({ namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
    expect(rule!.metricsQuery).toContain('<<.Series>>{<<.LabelMatchers>>}');
    expect(rule!.metricsQuery).toContain('by (<<.GroupBy>>)');
    // A gauge: no rate() around it.
    expect(rule!.metricsQuery).not.toMatch(/rate\(/);
    expect(values.rules.default).toBe(true);
  });
});
