// OCP Metrics · turning a query answer into chart data: aligned series, totals, summary figures
// and the CSV table. Pure functions (no DOM, no state), unit-tested by tests/browser/shape.test.mjs.
import { DERIVED, PALETTE, metricColor, metricLabel } from './config.js';
import { fmtInt, labelTs, pad, tagText } from './format.js';

// Groups the answer's series by tag combination, aligned on the union of bucket labels.
export function shape(spec, answer, drillDims) {
  const labels = [...new Set(answer.flatMap((s) => Object.keys(s.dps || {})))];
  labels.sort((a, b) => labelTs(a) - labelTs(b));
  const index = new Map(labels.map((l, i) => [l, i]));
  const combos = new Map();
  for (const s of answer) {
    const key = drillDims.map((d) => (s.tags || {})[d] ?? '').join('\u0001');
    if (!combos.has(key)) {
      const m = {};
      for (const name of spec.metrics) m[name] = new Array(labels.length).fill(0);
      combos.set(key, { tags: s.tags || {}, m });
    }
    const arr = combos.get(key).m[s.metric];
    if (!arr) continue;
    for (const [l, v] of Object.entries(s.dps || {})) arr[index.get(l)] = Number(v) || 0;
  }
  return { labels, combos: [...combos.values()] };
}

// Builds uPlot data/series plus the CSV table and summary figures.
export function prepare(spec, answer, drillDims) {
  const { labels, combos } = shape(spec, answer, drillDims);
  const plot = spec.plot || spec.metrics;
  const drill = combos.length > 1 || drillDims.length > 0;
  const totals = {};
  for (const name of spec.metrics) totals[name] = combos.reduce((a, c) => a + c.m[name].reduce((x, y) => x + y, 0), 0);
  const series = []; // {label, color, values, kind: 'count'|'derived', scale}
  let ci = 0;
  for (const c of combos) {
    const suffix = drill ? tagText(c.tags, drillDims) : '';
    // The combination's totals over the range, shaped like one bucket, for the overall ratios.
    const tot = Object.fromEntries(Object.entries(c.m).map(([k, v]) => [k, [v.reduce((a, b) => a + b, 0)]]));
    for (const name of plot) {
      series.push({ label: suffix ? `${metricLabel(name)} · ${suffix}` : metricLabel(name), kind: 'count', overall: tot[name][0],
        color: drill ? PALETTE[ci++ % PALETTE.length] : metricColor(name, ci++), values: c.m[name], metric: name });
    }
    for (const dname of spec.derived || []) {
      const d = DERIVED[dname];
      series.push({ label: suffix ? `${d.label} · ${suffix}` : d.label, kind: 'derived', scale: d.scale, overall: d.fn(tot, 0),
        color: drill ? PALETTE[ci++ % PALETTE.length] : d.color, values: labels.map((_, i) => d.fn(c.m, i)) });
    }
  }
  const table = { header: ['bucket', ...series.map((s) => s.label)], rows: labels.map((l, i) => [l, ...series.map((s) => s.values[i])]) };
  const stats = {};
  let xs = labels.map(labelTs);
  let plotSeries = series;
  if (spec.peak) {
    // Sum each series per local hour of day; the labels are already in the selected zone.
    xs = [...Array(24).keys()];
    plotSeries = series.map((s) => {
      const v = new Array(24).fill(0);
      labels.forEach((l, i) => { v[+l.slice(11, 13)] += s.values[i]; });
      return { ...s, values: v };
    });
    const all = xs.map((hr) => plotSeries.reduce((a, s) => a + s.values[hr], 0));
    const max = Math.max(...all);
    const min = Math.min(...all);
    stats.peakHour = max > 0 ? `${pad(all.indexOf(max))}:00 (${fmtInt(max)})` : '–';
    stats.lowHour = max > 0 ? `${pad(all.indexOf(min))}:00 (${fmtInt(min)})` : '–';
    table.header = ['hour_of_day', ...plotSeries.map((s) => s.label)];
    table.rows = xs.map((hr) => [`${pad(hr)}:00`, ...plotSeries.map((s) => s.values[hr])]);
  } else {
    const first = series.find((s) => s.kind === 'count');
    const agg = labels.map((_, i) => series.reduce((a, s) => a + (s.kind === 'count' ? s.values[i] : 0), 0));
    stats.peak = agg.length ? Math.max(...agg) : NaN;
    stats.latest = first && agg.length ? agg[agg.length - 1] : NaN;
    stats.avg = agg.length ? agg.reduce((a, b) => a + b, 0) / agg.length : NaN;
  }
  const total = plotSeries.filter((s) => s.kind === 'count').reduce((a, s) => a + s.values.reduce((x, y) => x + y, 0), 0);
  return { labels, xs, series: plotSeries, totals, stats, table, total, stacked: spec.stacked && !drill };
}
