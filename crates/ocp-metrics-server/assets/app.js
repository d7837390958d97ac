// OCP Metrics · Reporting page.
//
// Plain JS, no build step. The page is a client of the public Metrics API v3, with the same
// bearer token as any other client, plus the catalog endpoints that list groups, dimensions and
// the values seen for each dimension. Each chart card exposes, for tests and debugging:
//   data-testid="chart-<id>", data-state (loading|ready|error), data-request (the JSON body it
//   last sent), data-total (sum of every plotted count value), data-first-label and
//   data-last-label (first and last bucket label of the answer), data-series (series plotted).
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------------
  // Static configuration
  // ---------------------------------------------------------------------------------------------
  const RT = '/metrics-api/v3/realtime/metrics/';
  const BATCH = '/metrics-api/v3/batch/metrics/';

  const RT_WINDOWS = [[20, '20 minutes'], [30, '30 minutes'], [60, '1 hour'], [120, '2 hours'],
    [240, '4 hours'], [360, '6 hours'], [720, '12 hours'], [1440, '24 hours'], [2880, '48 hours']];
  const INS_RANGES = [[7, 'Last 7 days'], [14, 'Last 14 days'], [30, 'Last 30 days'],
    [90, 'Last 90 days'], [180, 'Last 180 days'], [365, 'Last 365 days']];
  const DS_LABELS = { five_min: '5 minutes', hour: 'Hour', day: 'Day', week: 'Week', month: 'Month', year: 'Year' };
  const ZONES = ['UTC', 'America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Europe/London',
    'Europe/Athens', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Kathmandu', 'Asia/Singapore', 'Asia/Tokyo',
    'Australia/Sydney', 'Australia/Lord_Howe'];

  // Used when the catalog endpoint is unavailable; the catalog wins when it answers.
  const FALLBACK_ENDPOINTS = {
    [RT + 'dialogs']: { dimensions: ['flow_name', 'locale', 'channel', 'test_flag', 'region'], downsampling: ['five_min', 'hour'] },
    [RT + 'sessions']: { dimensions: ['channel', 'test_flag', 'region'], downsampling: ['five_min', 'hour'] },
    [RT + 'miniapps']: { dimensions: ['miniapp_name', 'miniapp_type', 'locale', 'channel', 'test_flag', 'region'], downsampling: ['five_min', 'hour'] },
    [BATCH + 'dialogs']: { dimensions: ['miniapp_name', 'miniapp_type', 'language', 'channel', 'miniapp_id', 'region'], downsampling: ['hour', 'day', 'week', 'month', 'year'] },
    [BATCH + 'sessions']: { dimensions: ['channel', 'region'], downsampling: ['hour', 'day', 'week', 'month', 'year'] },
    [BATCH + 'miniapps']: { dimensions: ['miniapp_name', 'miniapp_type', 'language', 'channel', 'miniapp_id', 'miniapp_fail_reason', 'region'], downsampling: ['hour', 'day', 'week', 'month', 'year'] },
  };

  const METRIC = {
    'session.initiated': ['Active sessions', '#2563eb'],
    dialogs_completed: ['Completed', '#2563eb'],
    dialogs_transferred: ['Transferred', '#f59e0b'],
    dialogs_terminated: ['Terminated', '#10b981'],
    root_system_errors: ['System errors', '#ef4444'],
    root_agent_requests: ['Agent requests', '#8b5cf6'],
    root_no_inputs: ['No-inputs', '#0ea5e9'],
    root_no_matches: ['No-matches', '#f97316'],
    root_critical_error: ['Critical errors', '#be123c'],
    miniapps_invocations: ['Invocations', '#2563eb'],
    miniapps_invocations_successful: ['Successful', '#10b981'],
    miniapps_system_errors: ['Errors', '#ef4444'],
    miniapps_no_inputs: ['No-inputs', '#0ea5e9'],
    miniapps_no_matches: ['No-matches', '#f97316'],
    sessions: ['Sessions', '#2563eb'],
    transferred: ['Transferred', '#f59e0b'],
    terminated: ['Terminated', '#10b981'],
    error: ['Error', '#ef4444'],
    other: ['Other', '#94a3b8'],
    successfultasks: ['Successful', '#10b981'],
    failedtasks: ['Failed', '#f59e0b'],
    errortasks: ['Error', '#ef4444'],
    hangeduptasks: ['Hung up', '#8b5cf6'],
    dtmfescapekeytasks: ['DTMF escape', '#0ea5e9'],
    othertasks: ['Other', '#94a3b8'],
  };
  const PALETTE = ['#2563eb', '#10b981', '#f59e0b', '#ef4444', '#8b5cf6', '#0ea5e9', '#ec4899',
    '#84cc16', '#f97316', '#64748b', '#14b8a6', '#a855f7'];

  // Derived (ratio) series, drawn as lines on their own right-hand axis.
  const DERIVED = {
    avg_duration: { label: 'Avg duration (s)', color: '#f59e0b', scale: 's', fn: (m, i) => ratio(m.duration10sec[i] * 10, m.sessions[i]) },
    avg_invocations: { label: 'Avg miniApps / session', color: '#8b5cf6', scale: 'ratio', fn: (m, i) => ratio(m.invocations[i], m.sessions[i]) },
    containment: { label: 'Containment rate (%)', color: '#0f172a', scale: '%', fn: (m, i) => pctOrNull(1 - m.transferred[i] / m.dialogs[i], m.dialogs[i]) },
    success_rate: { label: 'Success rate (%)', color: '#0f172a', scale: '%', fn: (m, i) => pctOrNull(m.successfultasks[i] / m.totalinvocations[i], m.totalinvocations[i]) },
  };

  // The chart cards. `plot` are the count series drawn; `metrics` are those requested.
  const CHARTS = [
    { id: 'rt-sessions', tab: 'rt', wide: true, path: RT + 'sessions', title: 'Sessions',
      sub: 'Active sessions per interval (a session counts in every interval it is active)',
      metrics: ['session.initiated'], area: true,
      summary: (t, s) => [['Peak', fmtInt(s.peak)], ['Latest', fmtInt(s.latest)], ['Average', fmtNum(s.avg)]] },
    { id: 'rt-dialogs', tab: 'rt', path: RT + 'dialogs', title: 'Dialogs', sub: 'Completed root dialogs and how they ended',
      metrics: ['dialogs_completed', 'dialogs_transferred', 'dialogs_terminated', 'root_system_errors'],
      summary: (t) => [['Completed', fmtInt(t.dialogs_completed)], ['Transfer rate', fmtPct(t.dialogs_transferred / t.dialogs_completed)],
        ['Error rate', fmtPct(t.root_system_errors / t.dialogs_completed)]] },
    { id: 'rt-dialog-friction', tab: 'rt', path: RT + 'dialogs', title: 'Dialog friction', sub: 'Agent requests, no-inputs, no-matches and critical errors in root dialogs',
      metrics: ['root_agent_requests', 'root_no_inputs', 'root_no_matches', 'root_critical_error'],
      summary: (t) => [['Agent requests', fmtInt(t.root_agent_requests)], ['No-inputs', fmtInt(t.root_no_inputs)], ['No-matches', fmtInt(t.root_no_matches)]] },
    { id: 'rt-miniapps', tab: 'rt', path: RT + 'miniapps', title: 'miniApp invocations', sub: 'Completed invocations, successful and with errors',
      metrics: ['miniapps_invocations', 'miniapps_invocations_successful', 'miniapps_system_errors'],
      summary: (t) => [['Invocations', fmtInt(t.miniapps_invocations)], ['Success rate', fmtPct(t.miniapps_invocations_successful / t.miniapps_invocations)],
        ['Error rate', fmtPct(t.miniapps_system_errors / t.miniapps_invocations)]] },
    { id: 'rt-miniapp-quality', tab: 'rt', path: RT + 'miniapps', title: 'miniApp no-inputs and no-matches', sub: 'Per-step recognition problems inside miniApps',
      metrics: ['miniapps_no_inputs', 'miniapps_no_matches'],
      summary: (t) => [['No-inputs', fmtInt(t.miniapps_no_inputs)], ['No-matches', fmtInt(t.miniapps_no_matches)]] },

    { id: 'ins-sessions', tab: 'ins', wide: true, path: BATCH + 'sessions', title: 'Total sessions',
      sub: 'Sessions per interval, average duration and average miniApp invocations per session',
      metrics: ['sessions', 'duration10sec', 'invocations'], plot: ['sessions'], bars: true, derived: ['avg_duration', 'avg_invocations'],
      summary: (t) => [['Sessions', fmtInt(t.sessions)], ['Avg duration', fmtDur(t.duration10sec * 10 / t.sessions)],
        ['Avg miniApps / session', fmtNum(t.invocations / t.sessions, 2)]] },
    { id: 'ins-outcome', tab: 'ins', path: BATCH + 'dialogs', title: 'Conversational outcome', sub: 'Dialogs by outcome; containment rate = 1 − transferred / dialogs',
      metrics: ['dialogs', 'transferred', 'terminated', 'error', 'other'], plot: ['transferred', 'terminated', 'error', 'other'],
      bars: true, stacked: true, derived: ['containment'],
      summary: (t) => [['Dialogs', fmtInt(t.dialogs)], ['Containment', fmtPct(1 - t.transferred / t.dialogs)], ['Error rate', fmtPct(t.error / t.dialogs)]] },
    { id: 'ins-miniapps', tab: 'ins', path: BATCH + 'miniapps', title: 'miniApp outcomes', sub: 'Invocations by result class',
      metrics: ['totalinvocations', 'successfultasks', 'failedtasks', 'errortasks', 'hangeduptasks', 'dtmfescapekeytasks', 'othertasks'],
      plot: ['successfultasks', 'failedtasks', 'errortasks', 'hangeduptasks', 'dtmfescapekeytasks', 'othertasks'],
      bars: true, stacked: true, derived: ['success_rate'],
      summary: (t) => [['Invocations', fmtInt(t.totalinvocations)], ['Success rate', fmtPct(t.successfultasks / t.totalinvocations)],
        ['Failed', fmtPct(t.failedtasks / t.totalinvocations)]] },
    { id: 'ins-peak', tab: 'ins', wide: true, path: BATCH + 'sessions', title: 'Peak hours', sub: 'Sessions by hour of day over the last 7 days (selected time zone)',
      metrics: ['sessions'], bars: true, peak: true,
      summary: (t, s) => [['Busiest hour', s.peakHour], ['Quietest hour', s.lowHour], ['Sessions', fmtInt(t.sessions)]] },
  ];

  const KPIS = {
    rt: [['rt-sessions', 'Latest', 'Active sessions (latest interval)'], ['rt-dialogs', 'Completed', 'Dialogs completed'],
      ['rt-dialogs', 'Transfer rate', 'Transfer rate'], ['rt-miniapps', 'Success rate', 'miniApp success rate']],
    ins: [['ins-sessions', 'Sessions', 'Total sessions'], ['ins-sessions', 'Avg duration', 'Avg session duration'],
      ['ins-sessions', 'Avg miniApps / session', 'Avg miniApps per session'], ['ins-outcome', 'Containment', 'Containment rate'],
      ['ins-miniapps', 'Success rate', 'miniApp success rate']],
  };

  // ---------------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------------
  const $ = (sel, root = document) => root.querySelector(sel);
  const h = (tag, attrs = {}, ...kids) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) if (kid != null) el.append(kid);
    return el;
  };
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nfCompact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
  const ok = (x) => Number.isFinite(x);
  const fmtInt = (x) => (ok(x) ? nf0.format(x) : '–');
  const fmtNum = (x, d = 1) => (ok(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '–');
  const fmtPct = (x) => (ok(x) ? (x * 100).toFixed(1) + ' %' : '–');
  const fmtDur = (s) => (ok(s) ? `${Math.floor(s / 60)}m ${pad(Math.round(s % 60))}s` : '–');
  function ratio(a, b) { return b > 0 ? a / b : null; }
  function pctOrNull(x, den) { return den > 0 ? x * 100 : null; }
  const metricLabel = (m) => (METRIC[m] ? METRIC[m][0] : m);
  const metricColor = (m, i) => (METRIC[m] ? METRIC[m][1] : PALETTE[i % PALETTE.length]);

  // Wall-clock parts of an instant in an IANA zone.
  const dtfCache = new Map();
  function partsIn(ms, tz) {
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
  const wall = (p) => `${p.y}/${pad(p.mo)}/${pad(p.d)} ${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
  // A bucket label `yyyy-MM-dd HH:mm:ss.S` read as if it were UTC: uPlot then shows it verbatim.
  function labelTs(label) {
    const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(label);
    return m ? Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000 : NaN;
  }
  function tsText(ts, withTime) {
    const d = new Date(ts * 1000);
    const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    return withTime ? `${day} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` : day;
  }
  const tagText = (tags, dims) => dims.filter((d) => d in tags).map((d) => tags[d]).join(' · ');

  // ---------------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------------
  const saved = (() => { try { return JSON.parse(localStorage.getItem('ocpm.ui') || '{}'); } catch { return {}; } })();
  // Browsers may report legacy zone names (ICU's Asia/Calcutta, Asia/Katmandu); use the canonical ones.
  const TZ_ALIASES = { 'Asia/Calcutta': 'Asia/Kolkata', 'Asia/Katmandu': 'Asia/Kathmandu', 'Asia/Saigon': 'Asia/Ho_Chi_Minh',
    'Asia/Rangoon': 'Asia/Yangon', 'Europe/Kiev': 'Europe/Kyiv', 'Atlantic/Faeroe': 'Atlantic/Faroe', 'Pacific/Enderbury': 'Pacific/Kanton',
    'America/Godthab': 'America/Nuuk', 'Australia/LHI': 'Australia/Lord_Howe', 'Etc/UTC': 'UTC', 'Etc/GMT': 'UTC', GMT: 'UTC', 'Etc/Universal': 'UTC' };
  const canonicalTz = (z) => TZ_ALIASES[z] || z;
  const browserTz = canonicalTz(Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  const state = {
    token: '',
    group: saved.group || '',
    tz: canonicalTz(saved.tz || browserTz),
    tab: saved.tab === 'ins' ? 'ins' : 'rt',
    rtWindow: saved.rtWindow || 120,
    rtDs: saved.rtDs || 'five_min',
    insRange: saved.insRange || 30,
    insDs: saved.insDs || 'day',
    clockOffset: 0, // server clock minus browser clock, from the catalog's `now`
    catalog: null,
    values: {}, // path -> {dimension: [values]}
    nextRefresh: 0,
  };
  const persist = () => {
    const { group, tz, tab, rtWindow, rtDs, insRange, insDs } = state;
    try { localStorage.setItem('ocpm.ui', JSON.stringify({ group, tz, tab, rtWindow, rtDs, insRange, insDs })); } catch { /* private mode */ }
  };
  const serverNow = () => Date.now() + state.clockOffset;
  const endpointInfo = (path) => {
    const e = state.catalog && (state.catalog.endpoints || []).find((x) => x.path === path);
    return e || FALLBACK_ENDPOINTS[path];
  };

  // Token: `#token=...` on first load, then sessionStorage; removed from the address bar.
  (function readToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      state.token = decodeURIComponent(m[1]);
      try { sessionStorage.setItem('ocpm.token', state.token); } catch { /* ignore */ }
      history.replaceState(null, '', location.pathname + location.search);
    } else {
      try { state.token = sessionStorage.getItem('ocpm.token') || ''; } catch { /* ignore */ }
    }
  })();

  // ---------------------------------------------------------------------------------------------
  // API
  // ---------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'The server cannot be reached: ' + e.message);
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!res.ok) {
      let msg = (data && data.message) || `HTTP ${res.status} ${res.statusText}`;
      if (res.status === 401) msg += ' — set a valid token in the header.';
      throw new ApiError(res.status, msg);
    }
    return data;
  }

  function showBanner(msg) {
    const b = $('#banner');
    b.hidden = !msg;
    b.textContent = msg || '';
  }

  async function loadCatalog() {
    try {
      const cat = await api('GET', '/api/v1/catalog');
      state.catalog = cat;
      const now = Date.parse(cat.now);
      state.clockOffset = Number.isFinite(now) ? now - Date.now() : 0;
      state.catalogError = '';
      showBanner('');
    } catch (e) {
      state.catalog = null;
      state.clockOffset = 0;
      state.catalogError = 'Catalog unavailable: ' + e.message;
      showBanner(state.catalogError);
    }
    const groups = (state.catalog && state.catalog.groups) || [];
    if (!groups.includes(state.group)) state.group = (await busiestGroup(groups)) || state.group;
    const sel = $('#group');
    sel.replaceChildren(...(groups.length ? groups : [state.group || '']).map((g) => h('option', { value: g, text: g || '(no group)' })));
    sel.value = state.group;
  }

  async function loadValues() {
    const paths = [...new Set(CHARTS.map((c) => c.path))];
    const group = state.group;
    await Promise.all(paths.map(async (path) => {
      try {
        const v = await api('GET', `/api/v1/catalog/values?group=${encodeURIComponent(group)}&path=${encodeURIComponent(path)}`);
        if (group === state.group) state.values[path] = v || {};
      } catch {
        state.values[path] = {};
      }
    }));
    for (const c of cards) c.fillFilterValues();
  }

  // ---------------------------------------------------------------------------------------------
  // Requests
  // ---------------------------------------------------------------------------------------------
  function timeRange(spec) {
    const now = serverNow();
    const tz = state.tz;
    if (spec.peak) return { start: wall(partsIn(now - 7 * 86400e3, tz)), end: wall(partsIn(now, tz)), ds: 'hour' };
    if (spec.tab === 'rt') {
      // Stay a little inside the 48-hour limit: the server checks it against its own, later, now.
      const ms = Math.min(state.rtWindow * 60e3, 48 * 3600e3 - 3 * 60e3);
      return { start: wall(partsIn(now - ms, tz)), end: wall(partsIn(now, tz)), ds: state.rtDs };
    }
    // Insights: whole local days, today included.
    const p = partsIn(now, tz);
    const first = new Date(Date.UTC(p.y, p.mo - 1, p.d - (state.insRange - 1)));
    const start = { y: first.getUTCFullYear(), mo: first.getUTCMonth() + 1, d: first.getUTCDate(), h: 0, mi: 0, s: 0 };
    return { start: wall(start), end: wall(p), ds: state.insDs };
  }

  function buildRequest(card) {
    const spec = card.spec;
    const { start, end, ds } = timeRange(spec);
    const filters = {};
    let drilldown = false;
    for (const dim of card.dims) {
      const f = card.filters[dim];
      if (dim === 'test_flag') {
        if (f.value !== '') filters.test_flag = f.value === 'true';
      } else if (f.values.size || f.split) {
        filters[dim] = [...f.values];
        if (f.split) drilldown = true;
      }
    }
    return { metrics: spec.metrics, filters, start, end, group: state.group, downsampling: ds, drilldown, timezone: state.tz };
  }

  // The group with the most active sessions over the last hour: where the page opens when no
  // group was chosen before (a quiet group at night makes a poor first impression). Only the
  // first GROUP_PROBE_MAX groups are asked, so a token granted hundreds costs a bounded burst.
  const GROUP_PROBE_MAX = 12;
  async function busiestGroup(groups) {
    if (groups.length <= 1) return groups[0];
    const now = serverNow();
    const body = (group) => ({ metrics: ['session.initiated'], filters: {}, group, downsampling: 'five_min', timezone: 'UTC',
      start: wall(partsIn(now - 3600e3, 'UTC')), end: wall(partsIn(now + 300e3, 'UTC')) });
    const sums = await Promise.all(groups.slice(0, GROUP_PROBE_MAX).map(async (g) => {
      try {
        const answer = await api('POST', RT + 'sessions', body(g));
        return Object.values((answer[0] || {}).dps || {}).reduce((a, b) => a + b, 0);
      } catch { return -1; }
    }));
    let best = 0;
    sums.forEach((n, i) => { if (n > sums[best]) best = i; });
    return groups[best];
  }

  // ---------------------------------------------------------------------------------------------
  // Live updates of the real-time tab
  // ---------------------------------------------------------------------------------------------
  // The real-time cards follow GET /api/v1/live, server-sent events read with fetch() so that
  // the token travels in the Authorization header, never in a URL (EventSource cannot send
  // headers). Cards whose requests differ only in their metrics share one stream (three by
  // default). Streams run only while auto-update is on, the Real-time tab is shown and the page
  // is visible: a browser keeps at most six connections to one server, and each stream holds one.
  // When a stream cannot be opened or breaks, the tab says "polling", the cards are refreshed
  // every 60 s, and the stream is tried again after a pause that doubles up to a minute.
  const LIVE_STALL_MS = 45e3; // three heartbeats missed: the stream is dead even if not closed
  const LIVE_RETRY_MIN_MS = 2e3;
  const LIVE_RETRY_MAX_MS = 60e3;
  const RT_FAMILIES = { [RT + 'dialogs']: 'dialogs', [RT + 'sessions']: 'sessions', [RT + 'miniapps']: 'miniapps' };

  function liveKey(card) {
    const b = buildRequest(card);
    return JSON.stringify([state.token, card.spec.path, b.group, b.timezone, b.downsampling, state.rtWindow, b.filters, b.drilldown]);
  }

  const live = {
    streams: new Map(), // key -> stream
    retryMs: LIVE_RETRY_MIN_MS,
    retryAt: 0,
    why: 'not started',

    // The streams the shown cards need: key -> {path, body, metrics}.
    wanted() {
      const out = new Map();
      if (state.tab !== 'rt' || document.hidden || !state.group || !$('#rt-auto').checked) return out;
      for (const card of cards.filter((c) => c.spec.tab === 'rt' && RT_FAMILIES[c.spec.path])) {
        const key = liveKey(card);
        const w = out.get(key) || { path: card.spec.path, body: buildRequest(card), metrics: new Set() };
        card.spec.metrics.forEach((m) => w.metrics.add(m));
        out.set(key, w);
      }
      return out;
    },

    // Closes the streams no card needs and opens the missing ones (unless waiting to retry).
    sync() {
      const wanted = this.wanted();
      for (const [key, s] of this.streams) if (!wanted.has(key)) this.close(s);
      if (Date.now() >= this.retryAt) {
        for (const [key, w] of wanted) if (!this.streams.has(key)) this.open(key, w);
      }
      this.badge();
    },

    isLive() {
      const wanted = this.wanted();
      return wanted.size > 0 && [...wanted.keys()].every((k) => this.streams.get(k)?.ready);
    },

    open(key, w) {
      const b = w.body;
      const params = new URLSearchParams({ group: b.group, family: RT_FAMILIES[w.path], metrics: [...w.metrics].join(','),
        filters: JSON.stringify(b.filters), drilldown: String(b.drilldown), downsampling: b.downsampling, timezone: b.timezone,
        window_minutes: String(Math.min(state.rtWindow, 48 * 60)) });
      const s = { key, ctrl: new AbortController(), series: new Map(), ready: false, closed: false, seen: Date.now() };
      this.streams.set(key, s);
      this.read(s, '/api/v1/live?' + params).catch((e) => this.fail(s, e.message));
    },

    close(s) {
      s.closed = true;
      s.ctrl.abort();
      if (this.streams.get(s.key) === s) this.streams.delete(s.key);
    },

    // A stream broke: fall back to polling now and try again later.
    fail(s, why) {
      if (s.closed) return;
      this.close(s);
      this.why = why;
      this.retryAt = Date.now() + this.retryMs;
      setTimeout(() => this.sync(), this.retryMs + 50);
      this.retryMs = Math.min(this.retryMs * 2, LIVE_RETRY_MAX_MS);
      this.badge();
      if (Date.now() > state.nextRefresh - 55e3) state.nextRefresh = Date.now(); // poll at once if data may be stale
    },

    // Called every few seconds: a stream silent for longer than its heartbeats allow is dead.
    watch() {
      for (const s of [...this.streams.values()]) {
        if (Date.now() - s.seen > LIVE_STALL_MS) this.fail(s, 'the stream went silent');
      }
      this.sync();
    },

    async read(s, url) {
      const headers = { Accept: 'text/event-stream' };
      if (state.token) headers.Authorization = 'Bearer ' + state.token;
      const res = await fetch(url, { headers, signal: s.ctrl.signal, cache: 'no-store' });
      if (!res.ok || !res.body) {
        let why = `HTTP ${res.status}`;
        try { why = (await res.json()).message || why; } catch { /* not JSON */ }
        return this.fail(s, why);
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (s.closed) return;
        if (done) return this.fail(s, 'the server ended the stream');
        s.seen = Date.now();
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          this.message(s, buf.slice(0, end));
          buf = buf.slice(end + 2);
        }
      }
    },

    // One server-sent event: `event:` and `data:` lines; comment lines (heartbeats) only prove life.
    message(s, block) {
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (!data) return;
      const m = JSON.parse(data);
      if (event === 'error') return this.fail(s, m.message);
      const id = (x) => x.metric + '\u0001' + JSON.stringify(x.tags);
      if (event === 'snapshot') s.series = new Map();
      for (const x of m.series || []) {
        const old = s.series.get(id(x));
        s.series.set(id(x), { metric: x.metric, tags: x.tags, dps: { ...(old ? old.dps : {}), ...x.dps } });
      }
      for (const x of m.removed || []) s.series.delete(id(x));
      // Buckets that left the window: labels sort as the times they name.
      for (const x of s.series.values()) for (const l of Object.keys(x.dps)) if (m.from == null || l < m.from) delete x.dps[l];
      if (event === 'snapshot') {
        s.ready = true;
        this.retryMs = LIVE_RETRY_MIN_MS;
        this.why = '';
      }
      this.deliver(s);
    },

    // Redraws the cards this stream serves from what it holds.
    deliver(s) {
      for (const card of cards.filter((c) => c.spec.tab === 'rt' && liveKey(c) === s.key)) {
        const answer = [...s.series.values()].filter((x) => card.spec.metrics.includes(x.metric))
          .map((x) => ({ metric: x.metric, tags: x.tags, dps: x.dps }));
        card.seq++; // a query still in flight is older than this
        card.lastBody = buildRequest(card);
        card.el.dataset.request = JSON.stringify(card.lastBody);
        card.showAnswer(card.lastBody, answer);
      }
      updateKpis();
      state.nextRefresh = Date.now() + 60e3;
      showUpdated();
      this.badge();
    },

    badge() {
      const el = $('#rt-live');
      const mode = !$('#rt-auto').checked ? 'off' : this.isLive() ? 'live' : 'polling';
      el.dataset.mode = mode;
      el.textContent = mode === 'live' ? 'Live' : mode === 'polling' ? 'Polling every 60 s' : 'Paused';
      el.title = mode === 'live' ? 'Updated within a second of new events (server-sent events)'
        : mode === 'polling' ? `Live updates unavailable (${this.why || 'connecting'}); refreshing every 60 s` : 'Auto-update is off';
    },
  };

  const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
  function curlFor(path, body) {
    return `curl -sS -X POST ${shellQuote(location.origin + path)} \\\n  -H "Authorization: Bearer $TOKEN" \\\n` +
      `  -H 'Content-Type: application/json' \\\n  -d ${shellQuote(JSON.stringify(body))}`;
  }

  // ---------------------------------------------------------------------------------------------
  // Turning an answer into plot data
  // ---------------------------------------------------------------------------------------------
  // Groups the answer's series by tag combination, aligned on the union of bucket labels.
  function shape(spec, answer, drillDims) {
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
  function prepare(spec, answer, drillDims) {
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

  // ---------------------------------------------------------------------------------------------
  // uPlot rendering
  // ---------------------------------------------------------------------------------------------
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

  function uplotFor(card, p, width, height) {
    const spec = card.spec;
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
    }, data, card.plotEl);
  }

  // ---------------------------------------------------------------------------------------------
  // Chart cards
  // ---------------------------------------------------------------------------------------------
  let openDialogCard = null;

  class Card {
    constructor(spec) {
      this.spec = spec;
      this.seq = 0;
      this.u = null;
      this.prepared = null;
      this.lastBody = null;
      this.summary = {};
      this.dims = (endpointInfo(spec.path).dimensions || []).slice();
      this.filters = {};
      for (const d of this.dims) this.filters[d] = d === 'test_flag' ? { value: '' } : { values: new Set(), split: false };
      this.build();
    }

    build() {
      const id = this.spec.id;
      const btn = (text, testid, on) => h('button', { class: 'btn ghost sm', type: 'button', 'data-testid': `${testid}-${id}`, onclick: on, text });
      this.filterBtn = btn('Filters', 'filters-btn', () => { this.filterBar.hidden = !this.filterBar.hidden; });
      this.plotEl = h('div', { class: 'plot', 'data-testid': `plot-${id}` });
      this.msgEl = h('div', { class: 'msg', 'data-testid': `error-${id}`, hidden: true });
      this.filterSummary = h('span', { class: 'chips', 'data-testid': `filter-summary-${id}` });
      this.filterBar = h('div', { class: 'filterbar', hidden: true, 'data-testid': `filterbar-${id}` });
      this.footEl = h('div', { class: 'card-foot', 'data-testid': `summary-${id}` });
      this.el = h('article', { class: 'card' + (this.spec.wide ? ' wide' : ''), 'data-testid': `chart-${id}`, id: `chart-${id}`, 'data-state': 'idle', 'data-total': '0' },
        h('div', { class: 'card-head' },
          h('div', { class: 'titles' }, h('h2', {}, this.spec.title, h('span', { class: 'spinner', title: 'Loading' })), h('div', { class: 'sub', text: this.spec.sub }), this.filterSummary),
          h('div', { class: 'actions' }, this.filterBtn, btn('API', 'api-btn', () => this.showRequest()), btn('CSV', 'csv-btn', () => this.exportCsv()))),
        this.filterBar,
        h('div', { class: 'plot-wrap' }, this.plotEl, this.msgEl),
        this.footEl);
      this.buildFilters();
      new ResizeObserver(() => this.resize()).observe(this.plotEl);
    }

    buildFilters() {
      const id = this.spec.id;
      const items = [];
      this.lists = {};
      for (const dim of this.dims) {
        if (dim === 'test_flag') {
          const sel = h('select', { 'data-testid': `filter-${id}-test_flag`, onchange: () => { this.filters.test_flag.value = sel.value; this.changed(); } },
            h('option', { value: '', text: 'test_flag: any' }), h('option', { value: 'false', text: 'test_flag: false' }), h('option', { value: 'true', text: 'test_flag: true' }));
          items.push(h('label', { class: 'pill select' }, sel));
          continue;
        }
        const list = h('div', { class: 'ms-list' });
        const split = h('input', { type: 'checkbox', 'data-testid': `split-${id}-${dim}`,
          onchange: () => { this.filters[dim].split = split.checked; this.changed(); } });
        const summary = h('summary', { class: 'pill', 'data-testid': `filter-btn-${id}-${dim}` });
        this.lists[dim] = { list, summary };
        items.push(h('details', { class: 'ms', 'data-testid': `filter-${id}-${dim}` }, summary,
          h('div', { class: 'ms-pop' },
            h('label', { class: 'ms-split' }, split, ' One line per value (drilldown)'),
            list,
            h('div', { class: 'ms-foot' }, h('button', { class: 'btn ghost sm', type: 'button', text: 'Clear',
              onclick: () => { this.filters[dim].values.clear(); this.fillFilterValues(); this.changed(); } })))));
      }
      items.push(h('button', { class: 'btn ghost sm', type: 'button', 'data-testid': `filters-clear-${id}`, text: 'Reset all', onclick: () => this.resetFilters(true) }));
      this.filterBar.replaceChildren(...items);
      this.fillFilterValues();
    }

    resetFilters(reload) {
      for (const d of this.dims) this.filters[d] = d === 'test_flag' ? { value: '' } : { values: new Set(), split: false };
      this.buildFilters();
      if (reload) this.changed();
    }

    fillFilterValues() {
      const known = state.values[this.spec.path] || {};
      for (const [dim, { list }] of Object.entries(this.lists)) {
        const f = this.filters[dim];
        const vals = [...new Set([...(known[dim] || []), ...f.values])].sort();
        list.replaceChildren(...(vals.length ? vals.map((v) => {
          const cb = h('input', { type: 'checkbox', value: v, checked: f.values.has(v),
            onchange: () => { if (cb.checked) f.values.add(v); else f.values.delete(v); this.changed(); } });
          return h('label', { class: 'ms-item' }, cb, h('span', { text: v || '(empty)' }));
        }) : [h('div', { class: 'muted sm', text: 'No values seen yet' })]));
      }
      this.updateFilterSummary();
    }

    updateFilterSummary() {
      const chips = [];
      let n = 0;
      for (const dim of this.dims) {
        const f = this.filters[dim];
        if (dim === 'test_flag') {
          if (f.value !== '') { n++; chips.push(`test_flag = ${f.value}`); }
          continue;
        }
        const vals = [...f.values];
        const text = vals.length === 0 ? 'all' : vals.length <= 2 ? vals.join(', ') : `${vals.length} selected`;
        const { summary } = this.lists[dim];
        summary.textContent = `${dim}: ${text}${f.split ? ' (split)' : ''}`;
        summary.classList.toggle('active', vals.length > 0 || f.split);
        if (vals.length) { n++; chips.push(`${dim} = ${vals.join(' | ')}`); }
        if (f.split) chips.push(`by ${dim}`);
      }
      this.filterBtn.textContent = n ? `Filters (${n})` : 'Filters';
      this.filterBtn.classList.toggle('active', n > 0);
      this.filterSummary.replaceChildren(...chips.map((c) => h('span', { class: 'chip', text: c })));
    }

    changed() {
      this.updateFilterSummary();
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.load(), 250);
    }

    async load() {
      if (!state.group) {
        this.showError(state.catalogError || 'No group to show: the catalog lists none yet. Ingest some events first.');
        return;
      }
      const body = buildRequest(this);
      const seq = ++this.seq;
      this.lastBody = body;
      this.el.dataset.request = JSON.stringify(body);
      this.el.dataset.state = 'loading';
      try {
        const answer = await api('POST', this.spec.path, body);
        if (seq !== this.seq) return;
        this.showAnswer(body, answer);
      } catch (e) {
        if (seq !== this.seq) return;
        this.showError(e.message);
        if (e.status === 401) showBanner(e.message);
      }
      updateKpis();
      if (this.spec.tab === 'rt') live.sync();
    }

    // Draws an answer to `body`, from a query or from the live stream.
    showAnswer(body, answer) {
      if (!Array.isArray(answer)) throw new ApiError(0, 'Unexpected answer: not a JSON array');
      const drillDims = body.drilldown ? Object.keys(body.filters).filter((d) => d !== 'test_flag') : [];
      this.prepared = prepare(this.spec, answer, drillDims);
      this.summary = Object.fromEntries(this.spec.summary(this.prepared.totals, this.prepared.stats));
      this.render();
      const labels = this.prepared.labels;
      Object.assign(this.el.dataset, { total: String(this.prepared.total), firstLabel: labels[0] || '', lastLabel: labels[labels.length - 1] || '',
        series: String(this.prepared.series.length), state: 'ready' });
      this.el.removeAttribute('data-error');
    }

    showError(message) {
      this.prepared = null;
      this.summary = {};
      this.destroyPlot();
      this.msgEl.hidden = false;
      this.msgEl.className = 'msg error';
      this.msgEl.textContent = message;
      this.footEl.replaceChildren();
      Object.assign(this.el.dataset, { state: 'error', error: message, total: '0', firstLabel: '', lastLabel: '', series: '0' });
    }

    destroyPlot() {
      if (this.u) { this.u.destroy(); this.u = null; }
    }

    size() {
      return { width: Math.max(280, this.plotEl.clientWidth || 600), height: this.spec.wide ? 260 : 220 };
    }

    render() {
      const p = this.prepared;
      this.destroyPlot();
      this.msgEl.hidden = true;
      if (!p.labels.length || !p.series.length) {
        this.msgEl.hidden = false;
        this.msgEl.className = 'msg';
        this.msgEl.textContent = p.labels.length ? 'No data for these filters in this range.' : 'No intervals in this range yet.';
      } else {
        const { width, height } = this.size();
        this.u = uplotFor(this, p, width, height);
        if (p.total === 0) {
          this.msgEl.hidden = false;
          this.msgEl.className = 'msg overlay';
          this.msgEl.textContent = 'No activity in this range.';
        }
      }
      this.footEl.replaceChildren(...Object.entries(this.summary).map(([k, v]) =>
        h('div', { class: 'stat' }, h('div', { class: 'stat-label', text: k }), h('div', { class: 'stat-value', text: v }))));
    }

    resize() {
      if (!this.u) return;
      const w = this.plotEl.clientWidth;
      if (w > 0 && Math.abs(w - this.u.width) > 2) this.u.setSize({ width: w, height: this.size().height });
    }

    showRequest() {
      const body = this.lastBody || buildRequest(this);
      openDialogCard = this;
      $('#api-title').textContent = `${this.spec.title} · POST ${this.spec.path}`;
      $('#api-curl').textContent = curlFor(this.spec.path, body);
      $('#api-json').textContent = JSON.stringify(body, null, 2);
      $('#api-copied').textContent = '';
      $('#api-dialog').showModal();
    }

    exportCsv() {
      if (!this.prepared) return;
      const t = this.prepared.table;
      const csv = globalThis.OcpCsv.csvText([t.header, ...t.rows]);
      const a = h('a', { href: URL.createObjectURL(new Blob([csv], { type: 'text/csv' })),
        download: `${this.spec.id}_${state.group}_${(this.lastBody.start || '').slice(0, 10).replace(/\//g, '-')}.csv` });
      document.body.append(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Page wiring
  // ---------------------------------------------------------------------------------------------
  let cards = [];

  function updateKpis() {
    for (const tab of ['rt', 'ins']) {
      $(`#kpis-${tab}`).replaceChildren(...KPIS[tab].map(([cid, key, label]) => {
        const card = cards.find((c) => c.spec.id === cid);
        const v = card && card.summary[key];
        return h('div', { class: 'kpi', 'data-testid': `kpi-${cid}-${key.toLowerCase().replace(/[^a-z]+/g, '-')}` },
          h('div', { class: 'kpi-label', text: label }), h('div', { class: 'kpi-value', text: v == null ? '–' : v }));
      }));
    }
  }

  function buildCards() {
    for (const c of cards) c.destroyPlot();
    cards = CHARTS.map((spec) => new Card(spec));
    $('#grid-rt').replaceChildren(...cards.filter((c) => c.spec.tab === 'rt').map((c) => c.el));
    $('#grid-ins').replaceChildren(...cards.filter((c) => c.spec.tab === 'ins').map((c) => c.el));
    updateKpis();
  }

  const loadTab = (tab) => Promise.all(cards.filter((c) => c.spec.tab === tab).map((c) => c.load()));
  function refreshRt() {
    state.nextRefresh = Date.now() + 60e3;
    showUpdated();
    return loadTab('rt');
  }
  function showUpdated() {
    $('#rt-updated').textContent = `Updated ${new Date(serverNow()).toLocaleTimeString('en-GB', { timeZone: state.tz })} (${state.tz})`;
  }
  const reloadAll = () => Promise.all([refreshRt(), loadTab('ins')]);

  function setTab(tab) {
    state.tab = tab;
    persist();
    for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.tab === tab);
    $('#panel-rt').hidden = tab !== 'rt';
    $('#panel-ins').hidden = tab !== 'ins';
    live.sync();
    requestAnimationFrame(() => cards.forEach((c) => c.resize()));
  }

  function fillSelect(sel, options, value) {
    sel.replaceChildren(...options.map(([v, label]) => h('option', { value: v, text: label })));
    sel.value = String(value);
    if (sel.value !== String(value) && options.length) sel.value = String(options[0][0]);
    return sel.value;
  }

  function initControls() {
    const zones = ZONES.includes(browserTz) ? [...ZONES] : [browserTz, ...ZONES];
    if (!zones.includes(state.tz)) zones.push(state.tz);
    fillSelect($('#tz'), zones.map((z) => [z, z === browserTz ? `${z} (browser)` : z]), state.tz);
    state.rtWindow = +fillSelect($('#rt-window'), RT_WINDOWS, state.rtWindow);
    const rtDs = endpointInfo(RT + 'sessions').downsampling || ['five_min', 'hour'];
    state.rtDs = fillSelect($('#rt-ds'), rtDs.map((d) => [d, DS_LABELS[d] || d]), state.rtDs);
    state.insRange = +fillSelect($('#ins-range'), INS_RANGES, state.insRange);
    const insDs = endpointInfo(BATCH + 'sessions').downsampling || ['hour', 'day', 'week', 'month', 'year'];
    state.insDs = fillSelect($('#ins-ds'), insDs.map((d) => [d, DS_LABELS[d] || d]), state.insDs);
    $('#token').value = state.token;
  }

  function wire() {
    for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => setTab(b.dataset.tab));
    $('#tz').addEventListener('change', (e) => { state.tz = e.target.value; persist(); reloadAll(); });
    $('#group').addEventListener('change', async (e) => {
      state.group = e.target.value;
      persist();
      for (const c of cards) c.resetFilters(false);
      reloadAll();
      await loadValues();
    });
    $('#rt-window').addEventListener('change', (e) => { state.rtWindow = +e.target.value; persist(); refreshRt(); });
    $('#rt-ds').addEventListener('change', (e) => { state.rtDs = e.target.value; persist(); refreshRt(); });
    $('#ins-range').addEventListener('change', (e) => { state.insRange = +e.target.value; persist(); loadTab('ins'); });
    $('#ins-ds').addEventListener('change', (e) => { state.insDs = e.target.value; persist(); loadTab('ins'); });
    $('#rt-refresh').addEventListener('click', () => refreshRt());
    $('#ins-refresh').addEventListener('click', () => loadTab('ins'));
    $('#token-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      state.token = $('#token').value.trim();
      try { sessionStorage.setItem('ocpm.token', state.token); } catch { /* ignore */ }
      await start();
    });
    // Close an open filter drop-down when clicking elsewhere; only one open at a time.
    document.addEventListener('click', (e) => {
      for (const d of document.querySelectorAll('details.ms[open]')) if (!d.contains(e.target)) d.open = false;
    });
    $('#api-close').addEventListener('click', () => $('#api-dialog').close());
    const copy = async (text) => {
      try { await navigator.clipboard.writeText(text); } catch {
        const ta = h('textarea', {}, text);
        document.body.append(ta); ta.select(); document.execCommand('copy'); ta.remove();
      }
      $('#api-copied').textContent = 'Copied to clipboard';
    };
    $('#api-copy-curl').addEventListener('click', () => copy($('#api-curl').textContent));
    $('#api-copy-json').addEventListener('click', () => copy(JSON.stringify(openDialogCard && openDialogCard.lastBody)));
    // Auto-refresh of the real-time tab.
    setInterval(() => {
      const auto = $('#rt-auto').checked;
      const left = Math.max(0, Math.round((state.nextRefresh - Date.now()) / 1000));
      $('#rt-updated').dataset.next = auto ? String(left) : '';
      if (auto && left === 0 && !document.hidden && !live.isLive()) refreshRt();
    }, 1000);
    $('#rt-auto').addEventListener('change', () => live.sync());
    document.addEventListener('visibilitychange', () => live.sync());
    setInterval(() => live.watch(), 5000);
  }

  async function start() {
    await loadCatalog();
    initControls();
    buildCards();
    setTab(state.tab);
    const values = loadValues();
    await reloadAll();
    await values;
  }

  wire();
  start();
})();
