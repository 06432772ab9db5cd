// Summarises the CPU profiles of one target's nodes over one window: where the busy time goes, by
// function (self time), by package or source file, and by application function (inclusive time).
import { basename } from 'node:path';
import type { TargetKind } from '../cluster/cluster.js';
import type { ProfileSummary } from '../results.js';

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

/** Where a script lives, coarse enough to add up: an npm package, a project file, or Node itself. */
export function ownerOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? url);
  }
  if (url.startsWith('node:')) return 'node: core';
  const m = /(signaling-server|load-tests|client)\/.*$/.exec(url);
  return m ? m[0].replace(/^signaling-server\/(dist|src)\//, 'server: ') : basename(url);
}

/** Application code, whose inclusive time says which of its operations cost the most. */
const isAppCode = (url: string) => /signaling-server\/|load-tests\/(baseline|floor)\//.test(url);

export function summarizeProfiles(target: TargetKind, profiles: CpuProfile[], top = 15): ProfileSummary {
  const selfByFn = new Map<string, { fn: string; where: string; us: number }>();
  const totalByAppFn = new Map<string, { fn: string; where: string; us: number }>();
  const selfByOwner = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const prof of profiles) {
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const parentOf = new Map<number, number>();
    for (const n of prof.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
    prof.samples.forEach((id, i) => {
      const dt = prof.timeDeltas[i] ?? 0;
      const node = byId.get(id);
      if (!node) return;
      const { functionName, url, lineNumber } = node.callFrame;
      totalUs += dt;
      if (functionName === '(idle)') {
        idleUs += dt;
        return;
      }
      const fn = functionName || '(anonymous)';
      const where = url ? `${ownerOf(url, fn)}:${lineNumber + 1}` : '';
      const key = `${fn}@${where}`;
      const entry = selfByFn.get(key) ?? { fn, where, us: 0 };
      entry.us += dt;
      selfByFn.set(key, entry);
      const owner = ownerOf(url, fn);
      selfByOwner.set(owner, (selfByOwner.get(owner) ?? 0) + dt);
      // Inclusive time: every application function on the stack, once per sample.
      const seen = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
        const frame = byId.get(at)?.callFrame;
        if (!frame || !isAppCode(frame.url)) continue;
        const name = frame.functionName || '(anonymous)';
        const place = `${ownerOf(frame.url, name)}:${frame.lineNumber + 1}`;
        const k = `${name}@${place}`;
        if (seen.has(k)) continue;
        seen.add(k);
        const e = totalByAppFn.get(k) ?? { fn: name, where: place, us: 0 };
        e.us += dt;
        totalByAppFn.set(k, e);
      }
    });
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs ? Math.round((us / busyUs) * 1000) / 10 : 0);
  return {
    target,
    totalMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    top: [...selfByFn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 1000), selfPct: pct(e.us) })),
    appInclusive: [...totalByAppFn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 1000), selfPct: pct(e.us) })),
    byPackage: [...selfByOwner.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([pkg, us]) => ({ pkg, selfMs: Math.round(us / 1000), selfPct: pct(us) })),
  };
}
