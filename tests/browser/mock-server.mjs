// A tiny stand-in for the ocp-metrics server, for developing and testing the Reporting page
// without the Rust binary: serves crates/ocp-metrics-server/assets, the catalog endpoints and
// plausible, deterministic answers for the six v3 query endpoints.
//
//   node tests/browser/mock-server.mjs [--port 8089] [--token dev-token] [--shift-minutes 0]
//   node tests/browser/mock-server.mjs --upstream http://127.0.0.1:8080
//
// With --upstream it only serves the page's files from the working tree and passes every other
// request to that server (to work on the page against a real server without rebuilding it).
//
// Prints `listening on http://127.0.0.1:PORT`, like the real server. Values are a smooth daily
// curve times per-dimension-value weights, so a filtered answer is never larger than the
// unfiltered one. Not a reference for the metric definitions: the Rust server is.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ASSETS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../crates/ocp-metrics-server/assets');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const PORT = Number(arg('port', '8089'));
const TOKEN = arg('token', 'dev-token');
const SHIFT_MS = Number(arg('shift-minutes', '0')) * 60e3;
const UPSTREAM = arg('upstream', '');
const now = () => Date.now() + SHIFT_MS;

// ------------------------------------------------------------------------------------------------
// The world
// ------------------------------------------------------------------------------------------------
const RT = '/metrics-api/v3/realtime/metrics/';
const BATCH = '/metrics-api/v3/batch/metrics/';
const ENDPOINTS = {
  [RT + 'dialogs']: { metrics: ['root_agent_requests', 'root_system_errors', 'root_critical_error', 'root_no_inputs', 'root_no_matches', 'dialogs_completed', 'dialogs_transferred', 'dialogs_terminated'],
    dimensions: ['flow_name', 'locale', 'channel', 'test_flag', 'region'] },
  [RT + 'sessions']: { metrics: ['session.initiated'], dimensions: ['channel', 'test_flag', 'region'] },
  [RT + 'miniapps']: { metrics: ['miniapps_agent_requests', 'miniapps_invocations', 'miniapps_system_errors', 'miniapps_critical_error', 'miniapps_invocations_successful', 'miniapps_no_inputs', 'miniapps_no_matches'],
    dimensions: ['miniapp_name', 'miniapp_type', 'locale', 'channel', 'test_flag', 'region'] },
  [BATCH + 'dialogs']: { metrics: ['dialogs', 'terminated', 'transferred', 'error', 'other'],
    dimensions: ['miniapp_name', 'miniapp_type', 'language', 'channel', 'miniapp_id', 'region'] },
  [BATCH + 'sessions']: { metrics: ['sessions', 'invocations', 'duration10sec'], dimensions: ['channel', 'region'] },
  [BATCH + 'miniapps']: { metrics: ['totalinvocations', 'successfultasks', 'failedtasks', 'errortasks', 'hangeduptasks', 'dtmfescapekeytasks', 'othertasks'],
    dimensions: ['miniapp_name', 'miniapp_type', 'language', 'channel', 'miniapp_id', 'miniapp_fail_reason', 'region'] },
};
// Per metric: a factor on the base rate, or the list of metrics it is the sum of.
const FACTOR = {
  'session.initiated': 1.6,
  dialogs_completed: 0.9, dialogs_transferred: 0.27, dialogs_terminated: 0.55, root_system_errors: 0.04,
  root_agent_requests: 0.35, root_no_inputs: 0.5, root_no_matches: 0.7, root_critical_error: 0.02,
  miniapps_invocations: 3.4, miniapps_invocations_successful: 2.8, miniapps_system_errors: 0.1, miniapps_critical_error: 0.04,
  miniapps_agent_requests: 0.3, miniapps_no_inputs: 0.5, miniapps_no_matches: 0.8,
  sessions: 1, duration10sec: 15, invocations: 3.4,
  transferred: 0.27, terminated: 0.55, error: 0.05, other: 0.08, dialogs: ['transferred', 'terminated', 'error', 'other'],
  successfultasks: 2.8, failedtasks: 0.35, errortasks: 0.1, hangeduptasks: 0.12, dtmfescapekeytasks: 0.03, othertasks: 0.02,
  totalinvocations: ['successfultasks', 'failedtasks', 'errortasks', 'hangeduptasks', 'dtmfescapekeytasks', 'othertasks'],
};
const GROUPS = {
  'ocp-qa': { scale: 0.6, flows: { car_retail_flow_test: 0.45, insurance_claim_flow: 0.35, qa_smoke_flow: 0.2 }, locales: { 'el-GR': 0.55, 'en-GB': 0.3, 'en-US': 0.15 } },
  'acme-bank': { scale: 1.5, flows: { banking_main_flow: 0.5, card_services_flow: 0.25, payments_flow: 0.15, loan_inquiry_flow: 0.1 }, locales: { 'en-US': 0.75, 'es-US': 0.25 } },
  'telco-in': { scale: 1.1, flows: { billing_flow: 0.4, tech_support_flow: 0.3, plan_change_flow: 0.2, sim_activation_flow: 0.1 }, locales: { 'en-GB': 0.6, 'en-US': 0.4 } },
};
const MINIAPPS = { Intent: ['Intent', 0.2], AccountNumber: ['AccountNumber', 0.12], YesNo: ['YesNo', 0.22], Date: ['Date', 0.14],
  PIN: ['Alphanumeric', 0.1], PhoneNumber: ['PhoneNumber', 0.1], Address: ['Alphanumeric', 0.06], FullName: ['Name', 0.06] };
const fakeId = (s) => {
  let x = 0x811c9dc5;
  for (const ch of s) x = Math.imul(x ^ ch.charCodeAt(0), 16777619) >>> 0;
  const hex = (x.toString(16).padStart(8, '0') + (x * 2654435761 >>> 0).toString(16).padStart(8, '0')).repeat(2);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
};
const hash01 = (...parts) => {
  let x = 2166136261;
  for (const ch of parts.join('|')) x = Math.imul(x ^ ch.charCodeAt(0), 16777619) >>> 0;
  x ^= x >>> 15; x = Math.imul(x, 2246822507) >>> 0; x ^= x >>> 13;
  return (x >>> 0) / 4294967296;
};

// Weights of each value of a dimension (summing to 1) for one group and endpoint.
function weights(group, p, dim) {
  const g = GROUPS[group] || GROUPS['ocp-qa'];
  const isDialogs = p.endsWith('/dialogs');
  const sum = (entries) => entries.reduce((o, [k, v]) => ({ ...o, [k]: (o[k] || 0) + v }), {});
  switch (dim) {
    case 'flow_name': return g.flows;
    case 'locale': case 'language': return g.locales;
    case 'channel': return { omIVR: 0.72, chat: 0.28 };
    case 'region': return { us1: 0.6, eu1: 0.4 };
    case 'test_flag': return { false: 0.96, true: 0.04 };
    case 'miniapp_name': return isDialogs ? g.flows : Object.fromEntries(Object.entries(MINIAPPS).map(([k, [, w]]) => [k, w]));
    case 'miniapp_type': return isDialogs ? { orchestrator: 1 } : sum(Object.values(MINIAPPS));
    case 'miniapp_id': return Object.fromEntries(Object.entries(isDialogs ? g.flows : Object.fromEntries(Object.entries(MINIAPPS).map(([k, [, w]]) => [k, w]))).map(([k, w]) => [fakeId(group + k), w]));
    case 'miniapp_fail_reason': return { '': 0.7, max_attempts: 0.12, not_recognized: 0.1, validation_failed: 0.08 };
    default: return {};
  }
}

// ------------------------------------------------------------------------------------------------
// Time
// ------------------------------------------------------------------------------------------------
const dtf = new Map();
function wallMs(ms, tz) { // the wall clock of instant `ms` in `tz`, as if it were UTC
  if (!dtf.has(tz)) dtf.set(tz, new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }));
  const o = {};
  for (const part of dtf.get(tz).formatToParts(new Date(ms))) o[part.type] = part.value;
  return Date.UTC(+o.year, o.month - 1, +o.day, +o.hour % 24, +o.minute, +o.second);
}
function instantOf(wall, tz) { // inverse of wallMs, good enough outside DST gaps
  const guess = wall - (wallMs(wall, tz) - wall);
  return wall - (wallMs(guess, tz) - guess);
}
function floorWall(w, ds) {
  const d = new Date(w);
  switch (ds) {
    case 'five_min': return w - (w % 300e3);
    case 'hour': return w - (w % 3600e3);
    case 'day': return w - (w % 86400e3);
    case 'week': { const day = w - (w % 86400e3); return day - ((d.getUTCDay() + 6) % 7) * 86400e3; }
    case 'month': return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    default: return Date.UTC(d.getUTCFullYear(), 0, 1);
  }
}
const label = (w) => new Date(w).toISOString().replace('T', ' ').slice(0, 19) + '.0';
function parseWall(s) {
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,3})?$/.exec(s || '');
  return m ? Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

// ------------------------------------------------------------------------------------------------
// Queries
// ------------------------------------------------------------------------------------------------
class Bad extends Error { constructor(status, msg) { super(msg); this.status = status; } }

function query(p, body) {
  const ep = ENDPOINTS[p];
  const rt = p.startsWith(RT);
  if (!body || typeof body !== 'object') throw new Bad(400, 'the body must be a JSON object');
  const { metrics, filters = {}, group, downsampling, drilldown = false, timezone = 'UTC' } = body;
  if (!Array.isArray(metrics) || !metrics.length) throw new Bad(400, '`metrics` must be a non-empty array');
  for (const m of metrics) if (!ep.metrics.includes(m)) throw new Bad(400, `unknown metric \`${m}\` for ${p}; valid: ${ep.metrics.join(', ')}`);
  for (const k of Object.keys(filters)) if (!ep.dimensions.includes(k)) throw new Bad(400, `unknown filter \`${k}\` for ${p}; valid: ${ep.dimensions.join(', ')}`);
  const dss = rt ? ['five_min', 'hour'] : ['hour', 'day', 'week', 'month', 'year'];
  if (!dss.includes(downsampling)) throw new Bad(400, `\`downsampling\` must be one of ${dss.join(', ')}`);
  if (!group) throw new Bad(400, '`group` is required');
  try { new Intl.DateTimeFormat('en-US', { timeZone: timezone }); } catch { throw new Bad(400, `unknown time zone \`${timezone}\``); }
  const sw = parseWall(body.start), ew = parseWall(body.end);
  if (!Number.isFinite(sw) || !Number.isFinite(ew)) throw new Bad(400, '`start` and `end` must be `yyyy/MM/dd HH:mm:ss`');
  const startI = instantOf(sw, timezone), endI = instantOf(ew, timezone);
  if (endI <= startI) throw new Bad(400, '`end` must be after `start`');
  const limit = rt ? 48 * 3600e3 : 720 * 86400e3;
  if (startI < now() - limit) throw new Bad(400, `\`start\` is more than ${rt ? '48 hours' : '720 days'} ago`);

  // Per dimension: the value sets to produce (one per drilldown combination) and their weight.
  const dims = Object.keys(filters).filter((d) => d !== 'test_flag');
  let combos = [{ tags: {}, w: 1 }];
  for (const d of dims) {
    const ws = weights(group, p, d);
    const chosen = filters[d].length ? filters[d] : Object.keys(ws);
    if (drilldown) combos = combos.flatMap((c) => chosen.map((v) => ({ tags: { ...c.tags, [d]: v }, w: c.w * (ws[v] || 0) })));
    else combos = combos.map((c) => ({ tags: filters[d].length === 1 ? { ...c.tags, [d]: filters[d][0] } : c.tags, w: c.w * chosen.reduce((a, v) => a + (ws[v] || 0), 0) }));
  }
  if ('test_flag' in filters) {
    const w = filters.test_flag ? 0.04 : 0.96;
    combos = combos.map((c) => ({ tags: { ...c.tags, test_flag: String(filters.test_flag) }, w: c.w * w }));
  }

  const scale = (GROUPS[group] || GROUPS['ocp-qa']).scale;
  const slot = rt ? 300e3 : 900e3;
  const first = instantOf(floorWall(sw, downsampling), timezone);
  const last = Math.min(endI, now());
  const labels = [];
  const slots = []; // [labelIndex, base]
  for (let t = first - (first % slot); t < last; t += slot) {
    const l = label(floorWall(wallMs(t, timezone), downsampling));
    if (labels[labels.length - 1] !== l) labels.push(l);
    const hour = new Date(t).getUTCHours() + new Date(t).getUTCMinutes() / 60;
    const daily = 0.2 + 0.8 * Math.exp(-((hour - 14) ** 2) / 20);
    const weekly = [0.55, 1, 1, 0.97, 0.95, 0.9, 0.6][new Date(t).getUTCDay()];
    slots.push([labels.length - 1, 40 * scale * daily * weekly * (slot / 300e3), t]);
  }
  const value = (m, base, t, c) => {
    const f = FACTOR[m];
    if (Array.isArray(f)) return f.reduce((a, x) => a + value(x, base, t, c), 0);
    const noise = 0.8 + 0.4 * hash01(t, m) * (drilldown ? 0.6 + 0.8 * hash01(t, JSON.stringify(c.tags)) : 1);
    return Math.round(base * f * c.w * noise);
  };
  const out = [];
  for (const m of metrics) {
    for (const c of combos) {
      const vals = new Array(labels.length).fill(0);
      for (const [i, base, t] of slots) vals[i] += value(m, base, t, c);
      if (drilldown && dims.length && vals.every((v) => v === 0)) continue;
      out.push({ metric: m, tags: { group, ...c.tags }, dps: Object.fromEntries(labels.map((l, i) => [l, vals[i]])) });
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------------
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
// The real server's policy (crates/ocp-metrics-server/src/assets.rs), so that the page is
// developed and tested under it: no inline script or style, no eval.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const send = (res, status, body, type = 'application/json') => {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Security-Policy': CSP });
  res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
};
function serveFile(res, rel) {
  const file = path.resolve(ASSETS, rel);
  if (!file.startsWith(ASSETS + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return send(res, 404, { message: `no asset \`${rel}\`` });
  send(res, 200, fs.readFileSync(file), TYPES[path.extname(file)] || 'text/plain; charset=utf-8');
}

function proxy(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    try {
      const headers = { ...req.headers };
      delete headers.host;
      const r = await fetch(UPSTREAM.replace(/\/+$/, '') + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
      res.writeHead(r.status, { 'Content-Type': r.headers.get('content-type') || 'application/octet-stream' });
      res.end(Buffer.from(await r.arrayBuffer()));
    } catch (e) {
      send(res, 502, { message: `upstream ${UPSTREAM} failed: ${e.message}` });
    }
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && url.pathname === '/') return serveFile(res, 'index.html');
  if (req.method === 'GET' && url.pathname.startsWith('/assets/')) return serveFile(res, decodeURIComponent(url.pathname.slice(8)));
  if (UPSTREAM) return proxy(req, res);
  if (url.pathname === '/healthz') return send(res, 200, 'ok', 'text/plain');
  const authed = TOKEN === '' || req.headers.authorization === `Bearer ${TOKEN}`;
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/metrics-api/')) {
    if (!authed) return send(res, 401, { message: 'missing or invalid bearer token: send `Authorization: Bearer <token>`' });
  }
  if (req.method === 'GET' && url.pathname === '/api/v1/catalog') {
    return send(res, 200, {
      groups: Object.keys(GROUPS), now: new Date(now()).toISOString(),
      endpoints: Object.entries(ENDPOINTS).map(([p, e]) => ({ path: p, realtime: p.startsWith(RT), ...e,
        downsampling: p.startsWith(RT) ? ['five_min', 'hour'] : ['hour', 'day', 'week', 'month', 'year'] })),
    });
  }
  if (req.method === 'GET' && url.pathname === '/api/v1/catalog/values') {
    const p = url.searchParams.get('path');
    const g = url.searchParams.get('group');
    if (!ENDPOINTS[p]) return send(res, 404, { message: `unknown endpoint path \`${p}\`` });
    return send(res, 200, Object.fromEntries(ENDPOINTS[p].dimensions.map((d) => [d, Object.keys(weights(g, p, d)).sort()])));
  }
  if (ENDPOINTS[url.pathname]) {
    if (req.method !== 'POST') return send(res, 405, { message: 'use POST' });
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      try {
        let body;
        try { body = JSON.parse(raw); } catch { throw new Bad(400, 'the body is not valid JSON'); }
        send(res, 200, query(url.pathname, body));
      } catch (e) {
        send(res, e.status || 500, { message: e.status ? e.message : 'internal error' });
        if (!e.status) console.error(e);
      }
    });
    return;
  }
  send(res, 404, { message: `no route for ${req.method} ${url.pathname}` });
});
server.listen(PORT, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
