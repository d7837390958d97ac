// OCP Metrics · drawing prepared chart data (shape.js) with uPlot, loaded before the modules as
// the classic script vendor/uPlot.iife.min.js (it defines the global `uPlot`).
import { fmtInt, fmtNum, nfCompact, ok, pad, tsText } from './format.js';

const { uPlot } = globalThis;
const axisFont = '11px Inter, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const axisBase = { stroke: '#64748b', font: axisFont, grid: { stroke: '#eef2f7', width: 1 }, ticks: { stroke: '#e2e8f0', width: 1, size: 4 } };
const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// Time-axis ticks in 24-hour time; the date under the first tick and at each new day.
function xTicks(u, splits, axisIdx, space, incr) {
  let prevDay = '';
  return splits.map((ts, i) => {
    const d = new Date(ts * 1000);
    const day = `${MON[d.getUTCMonth()]} ${d.getUTCDate()}`;
    let out;
    if (incr >= 28 * 86400) out = i === 0 || d.getUTCMonth() === 0 ? `${MON[d.getUTCMonth()]}\n${d.getUTCFullYear()}` : MON[d.getUTCMonth()];
    else if (incr >= 86400) out = i === 0 ? `${day}\n${d.getUTCFullYear()}` : day;
    else out = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` + (i === 0 || day !== prevDay ? `\n${day}` : '');
    prevDay = day;
    return out;
  });
}
const yValues = (u, vals) => vals.map((v) => (Math.abs(v) >= 1000 ? nfCompact.format(v) : +v.toFixed(2)));

// A uPlot chart of `p` (from `prepare`) for the card spec `spec`, drawn into `el`.
export function uplotFor(spec, p, width, height, el) {
  const counts = p.series.filter((s) => s.kind === 'count');
  const derived = p.series.filter((s) => s.kind === 'derived');
  const n = p.xs.length;
  const step = n > 1 ? Math.min(...p.xs.slice(1).map((x, i) => x - p.xs[i])) : 3600;
  const dayOrMore = !spec.peak && step >= 86400;
  // Stacked bars: draw the cumulative sums, tallest first so each smaller one sits on top.
  let countData = counts.map((s) => s.values);
  let order = counts.map((_, i) => i);
  if (p.stacked) {
    const cum = [];
    counts.forEach((s, i) => cum.push(s.values.map((v, j) => v + (i ? cum[i - 1][j] : 0))));
    order = order.reverse();
    countData = cum;
  }
  const useBars = spec.bars && !(counts.length > 1 && !p.stacked);
  const barPath = uPlot.paths.bars({ size: [counts.length > 1 && !p.stacked ? 0.9 : 0.72, 48], gap: 1 });
  const uSeries = [{
    label: spec.peak ? 'Hour' : 'Bucket',
    value: (u, x) => (x == null ? 'whole range' : spec.peak ? `${pad(x)}:00` : tsText(x, !dayOrMore)),
  }];
  const data = [p.xs];
  for (const i of order) {
    const s = counts[i];
    uSeries.push({
      label: s.label, stroke: s.color, width: useBars ? 0 : 2, scale: 'y',
      fill: useBars ? s.color + (p.stacked ? 'e6' : 'cc') : (spec.area && counts.length === 1 ? s.color + '1f' : undefined),
      paths: useBars ? barPath : undefined, points: { show: n < 3 },
      value: (u, v, si, di) => fmtInt(di == null ? s.overall : s.values[di]),
    });
    data.push(countData[i]);
  }
  for (const s of derived) {
    uSeries.push({ label: s.label, stroke: s.color, width: 2, dash: [6, 4], scale: s.scale, points: { show: n < 40, size: 5 },
      value: (u, v, si, di) => { const x = di == null ? s.overall : v; return x == null ? '–' : fmtNum(x, s.scale === 'ratio' ? 2 : 1); } });
    data.push(s.values);
  }
  const maxOf = (arrs) => Math.max(1, ...arrs.flat().filter(ok));
  const scales = {
    x: spec.peak ? { time: false, range: [-0.6, 23.6] } : { time: true, range: (u, min, max) => (min == null ? [0, 1] : useBars ? [min - step * 0.6, max + step * 0.6] : [min, max === min ? min + step : max]) },
    y: { range: () => [0, maxOf(countData) * 1.08] },
  };
  const axes = [{ ...axisBase, size: 44, values: spec.peak ? (u, vals) => vals.map((v) => (Number.isInteger(v) ? `${pad(v)}h` : '')) : xTicks,
    ...(spec.peak ? { incrs: [1, 2, 3, 6] } : {}) },
    { ...axisBase, scale: 'y', values: yValues, size: 48 }];
  for (const sc of [...new Set(derived.map((s) => s.scale))]) {
    const arrs = derived.filter((s) => s.scale === sc).map((s) => s.values);
    scales[sc] = { range: () => (sc === '%' ? [0, 100] : [0, maxOf(arrs) * 1.15]) };
    axes.push({ ...axisBase, scale: sc, side: 1, grid: { show: false }, size: 46,
      values: (u, vals) => vals.map((v) => (sc === '%' ? `${v}%` : sc === 's' ? `${v}s` : `${+v.toFixed(1)}×`)) });
  }
  return new uPlot({
    width, height, series: uSeries, scales, axes, legend: { live: true },
    cursor: { points: { size: 7 }, drag: { x: false, y: false } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
  }, data, el);
}
