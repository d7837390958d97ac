// OCP Metrics · numbers and times as the page shows them, and the time arithmetic of requests.
// Pure functions (no DOM, no state), unit-tested by tests/browser/format.test.mjs.

export const pad = (n, w = 2) => String(n).padStart(w, '0');
const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
export const nfCompact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
export const ok = (x) => Number.isFinite(x);
export const fmtInt = (x) => (ok(x) ? nf0.format(x) : '–');
export const fmtNum = (x, d = 1) => (ok(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '–');
export const fmtPct = (x) => (ok(x) ? (x * 100).toFixed(1) + ' %' : '–');
export const fmtDur = (s) => (ok(s) ? `${Math.floor(s / 60)}m ${pad(Math.round(s % 60))}s` : '–');
// A ratio, or null (a gap in the chart) when there is nothing to divide by.
export const ratio = (a, b) => (b > 0 ? a / b : null);
export const pctOrNull = (x, den) => (den > 0 ? x * 100 : null);

// Wall-clock parts of an instant in an IANA zone. Formatters are cached: building one is slow.
const dtfCache = new Map();
export function partsIn(ms, tz) {
  let f = dtfCache.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit',
      day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    dtfCache.set(tz, f);
  }
  const o = {};
  for (const p of f.formatToParts(new Date(ms))) o[p.type] = p.value;
  return { y: +o.year, mo: +o.month, d: +o.day, h: +o.hour % 24, mi: +o.minute, s: +o.second };
}

// `yyyy/MM/dd HH:mm:ss`, the API's start/end format.
export const wall = (p) => `${p.y}/${pad(p.mo)}/${pad(p.d)} ${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;

// A bucket label `yyyy-MM-dd HH:mm:ss.S` read as if it were UTC: uPlot then shows it verbatim.
export function labelTs(label) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(label);
  return m ? Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000 : NaN;
}

export function tsText(ts, withTime) {
  const d = new Date(ts * 1000);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return withTime ? `${day} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` : day;
}

// The values of a series' drilldown tags, in the order of `dims`.
export const tagText = (tags, dims) => dims.filter((d) => d in tags).map((d) => tags[d]).join(' · ');
