// OCP Metrics · the query a chart card sends, and the same query as a curl command. Pure
// functions of the card and the page's choices (`view`: group, tz, rtWindow, rtDs, insRange,
// insDs) at the instant `now` (server clock, ms), unit-tested by tests/browser/request.test.mjs.
import { partsIn, wall } from './format.js';

// The real-time API refuses windows longer than 48 hours, checked against the server's own,
// later, clock: stay this far inside the limit.
const RT_WINDOW_MARGIN_MS = 3 * 60e3;
const RT_WINDOW_MAX_MS = 48 * 3600e3;

// Start, end (API format, wall time in view.tz) and downsampling of a card's query.
export function timeRange(spec, now, view) {
  const tz = view.tz;
  if (spec.peak) return { start: wall(partsIn(now - 7 * 86400e3, tz)), end: wall(partsIn(now, tz)), ds: 'hour' };
  if (spec.tab === 'rt') {
    const ms = Math.min(view.rtWindow * 60e3, RT_WINDOW_MAX_MS - RT_WINDOW_MARGIN_MS);
    return { start: wall(partsIn(now - ms, tz)), end: wall(partsIn(now, tz)), ds: view.rtDs };
  }
  // Insights: whole local days, today included.
  const p = partsIn(now, tz);
  const first = new Date(Date.UTC(p.y, p.mo - 1, p.d - (view.insRange - 1)));
  const start = { y: first.getUTCFullYear(), mo: first.getUTCMonth() + 1, d: first.getUTCDate(), h: 0, mi: 0, s: 0 };
  return { start: wall(start), end: wall(p), ds: view.insDs };
}

// The JSON body of a card's query. `filters` maps each of the endpoint's dimensions `dims` to
// {values: Set, split} (`split` asks for one line per value), except test_flag: {value: ''|'true'|'false'}.
export function buildRequest(spec, dims, filters, view, now) {
  const { start, end, ds } = timeRange(spec, now, view);
  const out = {};
  let drilldown = false;
  for (const dim of dims) {
    const f = filters[dim];
    if (dim === 'test_flag') {
      if (f.value !== '') out.test_flag = f.value === 'true';
    } else if (f.values.size || f.split) {
      out[dim] = [...f.values];
      if (f.split) drilldown = true;
    }
  }
  return { metrics: spec.metrics, filters: out, start, end, group: view.group, downsampling: ds, drilldown, timezone: view.tz };
}

const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

// The query as a shell command; `$TOKEN` stands for the bearer token.
export function curlFor(origin, path, body) {
  return `curl -sS -X POST ${shellQuote(origin + path)} \\\n  -H "Authorization: Bearer $TOKEN" \\\n` +
    `  -H 'Content-Type: application/json' \\\n  -d ${shellQuote(JSON.stringify(body))}`;
}
