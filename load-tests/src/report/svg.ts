// Hand-written SVG charts: grouped bars (linear or log scale) and lines. No chart dependency.

export interface Series {
  name: string;
  color: string;
  values: Array<number | null>;
}

export interface BarChartSpec {
  title: string;
  unit: string;
  categories: string[];
  series: Series[];
  isLog?: boolean;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function fmt(x: number): string {
  if (Number.isInteger(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  if (Math.abs(x) >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

function niceMax(x: number): number {
  if (x <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

export function barChart(spec: BarChartSpec): string {
  const W = 640;
  const H = 320;
  const left = 64;
  const right = 16;
  const top = 40;
  const bottom = 64;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const values = spec.series.flatMap((s) => s.values).filter((v): v is number => v !== null && v > 0);
  const vmax = values.length ? Math.max(...values) : 1;
  const vmin = values.length ? Math.min(...values) : 1;

  let y: (v: number) => number;
  const ticks: number[] = [];
  if (spec.isLog) {
    const lo = Math.floor(Math.log10(vmin));
    const hi = Math.ceil(Math.log10(vmax)) + (Math.log10(vmax) % 1 === 0 ? 1 : 0);
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    y = (v) => top + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / Math.max(1, hi - lo)) * plotH;
  } else {
    const max = niceMax(vmax * 1.1);
    for (let i = 0; i <= 5; i++) ticks.push((max * i) / 5);
    y = (v) => top + plotH - (v / max) * plotH;
  }

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  for (const t of ticks) {
    const ty = y(t).toFixed(1);
    out.push(`<line x1="${left}" x2="${W - right}" y1="${ty}" y2="${ty}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle" fill="#555">${fmt(t)}</text>`);
  }
  out.push(
    `<text x="14" y="${top + plotH / 2}" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle" fill="#333">${esc(spec.unit)}${spec.isLog ? ' (log)' : ''}</text>`,
  );
  const groupW = plotW / spec.categories.length;
  const barW = Math.min(48, (groupW * 0.8) / spec.series.length);
  spec.categories.forEach((cat, ci) => {
    const gx = left + ci * groupW + (groupW - barW * spec.series.length) / 2;
    spec.series.forEach((s, si) => {
      const v = s.values[ci];
      const x = gx + si * barW;
      if (v === null || v === undefined) {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${top + plotH - 4}" text-anchor="middle" fill="#999">n/a</text>`);
        return;
      }
      const by = y(Math.max(v, spec.isLog ? Number.MIN_VALUE : 0));
      out.push(
        `<rect x="${x.toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${Math.max(0, top + plotH - by).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name} ${cat}: ${fmt(v)} ${spec.unit}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(by - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#222">${fmt(v)}</text>`,
      );
    });
    out.push(
      `<text x="${(left + ci * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${esc(cat)}</text>`,
    );
  });
  out.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  spec.series.forEach((s, si) => {
    const lx = left + si * 160;
    out.push(`<rect x="${lx}" y="${H - 22}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 18}" y="${H - 12}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface LineChartSpec {
  title: string;
  unit: string;
  xUnit: string;
  series: Array<{ name: string; color: string; points: Array<[number, number]> }>;
}

export function lineChart(spec: LineChartSpec): string {
  const W = 640;
  const H = 300;
  const left = 64;
  const right = 16;
  const top = 40;
  const bottom = 56;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const pts = spec.series.flatMap((s) => s.points);
  const xmax = niceMax(Math.max(1, ...pts.map((p) => p[0])));
  const ymax = niceMax(Math.max(1, ...pts.map((p) => p[1])) * 1.1);
  const x = (v: number) => left + (v / xmax) * plotW;
  const y = (v: number) => top + plotH - (v / ymax) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const t = (ymax * i) / 5;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#ddd"/>`);
    out.push(
      `<text x="${left - 6}" y="${y(t).toFixed(1)}" text-anchor="end" dominant-baseline="middle" fill="#555">${fmt(t)}</text>`,
    );
    const tx = (xmax * i) / 5;
    out.push(`<text x="${x(tx).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle" fill="#555">${fmt(tx)}</text>`);
  }
  out.push(
    `<text x="14" y="${top + plotH / 2}" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle" fill="#333">${esc(spec.unit)}</text>`,
  );
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 32}" text-anchor="middle" fill="#333">${esc(spec.xUnit)}</text>`);
  for (const s of spec.series) {
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
  }
  spec.series.forEach((s, si) => {
    const lx = left + si * 160;
    out.push(`<rect x="${lx}" y="${H - 16}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 18}" y="${H - 6}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export const COLORS = { project: '#2b6cb0', baseline: '#dd6b20', floor: '#718096', floor2: '#38a169' } as const;
