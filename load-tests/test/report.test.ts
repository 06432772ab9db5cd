// The report's verdicts: with several rounds it compares medians, so one noisy round of either
// target can neither meet nor miss a target on its own.
import { describe, expect, it } from 'vitest';
import { evaluateTargets, median, renderReport } from '../src/report/markdown.js';
import type { RunFile, ScenarioResult } from '../src/results.js';
import type { TargetKind } from '../src/cluster/cluster.js';

function relay(target: TargetKind, round: number, cpuPerThousand: number | null, p99: number, lost = 0): ScenarioResult {
  const latencyMs = { count: 1000, p50: 1, p90: 2, p99, max: p99 * 2, mean: 1 };
  return {
    scenario: 'relay',
    target,
    round,
    nodes: target === 'project' ? 3 : 2,
    params: {},
    setup: { connected: 400, failed: 0, setupMs: 1000, errors: {} },
    windowS: 14,
    relay: {
      sent: 1000,
      expected: 1000,
      delivered: 1000 - lost,
      lost,
      outOfOrder: 0,
      measured: 1000,
      throughputPerS: 1000,
      latencyMs,
    },
    cpu: {
      serverSeconds: cpuPerThousand ?? 0,
      perNodeSeconds: [cpuPerThousand ?? 0],
      redisSeconds: null,
      postgresSeconds: null,
      generatorSeconds: 1,
      perThousandDeliveries: cpuPerThousand,
      perThousandJoins: null,
    },
    rssBytes: { before: [0], after: [0] },
    errors: {},
    maxTimerLagMs: 1,
  };
}

function runOf(results: ScenarioResult[]): RunFile {
  const machine = { cpuModel: 'test', cores: 2, memoryGiB: 1, kernel: 'test', node: 'v20', commit: null, fdLimit: 1024 };
  return {
    startedAt: '2026-01-01T00:00:00Z',
    finishedAt: '2026-01-01T00:01:00Z',
    preset: 'small',
    command: 'bench',
    machine,
    results,
  };
}

const row = (run: RunFile, prefix: string) => evaluateTargets(run).find((r) => r.target.startsWith(prefix))!;

describe('bench report with several rounds', () => {
  it('takes the lower median, a value that was measured', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2);
  });

  it('judges the CPU target on the medians and shows each side’s range', () => {
    // Round 2 of the project alone would meet the target (0.1 ≤ 1.0 / 5); the medians do not.
    const run = runOf([
      relay('project', 1, 0.3, 5),
      relay('baseline', 1, 1.0, 6),
      relay('baseline', 2, 1.2, 6),
      relay('project', 2, 0.1, 5),
      relay('project', 3, 0.25, 5),
      relay('baseline', 3, 0.9, 6),
    ]);
    const cpu = row(run, 'relay: server CPU');
    expect(cpu.status).toBe('missed');
    expect(cpu.measured).toBe('0.25 [3 rounds: 0.10–0.30] vs 1 [3 rounds: 0.90–1.20] s/1k (0.25×)');
  });

  it('judges relay p99 on the medians, and counts a loss in any round', () => {
    const run = runOf([
      relay('project', 1, 0.3, 4),
      relay('baseline', 1, 1.0, 3),
      relay('baseline', 2, 1.0, 9),
      relay('project', 2, 0.3, 5, 2),
      relay('project', 3, 0.3, 20),
      relay('baseline', 3, 1.0, 8),
    ]);
    expect(row(run, 'relay p99').status).toBe('met');
    const lost = row(run, 'no message lost');
    expect(lost.status).toBe('missed');
    expect(lost.measured).toBe('relay 2 of 3000');
  });

  it('shows in its tables the round with the median CPU figure, passing over a round that measured none', () => {
    const run = runOf([
      relay('project', 1, 0.3, 5),
      relay('baseline', 1, 1.0, 6),
      relay('baseline', 2, 1.0, 6),
      relay('project', 2, null, 9),
      relay('project', 3, 0.25, 7),
      relay('baseline', 3, 1.0, 6),
    ]);
    const report = renderReport(run, [], '.');
    expect(report).toContain('| **server CPU s per 1k deliveries** | **0.25** | **1** |');
    expect(report).toContain('| latency p99 (ms) | 7 | 6 |');
  });
});
