// OCP Metrics · live updates of the real-time tab.
//
// The real-time cards follow GET /api/v1/live, server-sent events read with fetch() so that
// the token travels in the Authorization header, never in a URL (EventSource cannot send
// headers). Cards whose requests differ only in their metrics share one stream (three by
// default). Streams run only while auto-update is on, the Real-time tab is shown and the page
// is visible: a browser keeps at most six connections to one server, and each stream holds one.
// When a stream cannot be opened or breaks, the tab says "polling", the cards are refreshed
// every 60 s, and the stream is tried again after a pause that doubles up to a minute.
import { authHeaders } from './api.js';
import { cards, updateKpis } from './cards.js';
import { RT } from './config.js';
import { $ } from './dom.js';
import { serverNow, state } from './state.js';

// How often the real-time tab is polled while no live stream serves it.
const RT_POLL_MS = 60e3;

// Records that the real-time cards are fresh: the next poll is a full interval away.
export function markRtUpdated() {
  state.nextRefresh = Date.now() + RT_POLL_MS;
  $('#rt-updated').textContent = `Updated ${new Date(serverNow()).toLocaleTimeString('en-GB', { timeZone: state.tz })} (${state.tz})`;
}

const LIVE_STALL_MS = 45e3; // three heartbeats missed: the stream is dead even if not closed
const LIVE_RETRY_MIN_MS = 2e3;
const LIVE_RETRY_MAX_MS = 60e3;
const RT_FAMILIES = { [RT + 'dialogs']: 'dialogs', [RT + 'sessions']: 'sessions', [RT + 'miniapps']: 'miniapps' };

function liveKey(card) {
  const b = card.request();
  return JSON.stringify([state.token, card.spec.path, b.group, b.timezone, b.downsampling, state.rtWindow, b.filters, b.drilldown]);
}

export const live = {
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
      const w = out.get(key) || { path: card.spec.path, body: card.request(), metrics: new Set() };
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
    // Poll at once when the cards were last updated more than 5 s ago: their data may be stale.
    if (Date.now() > state.nextRefresh - (RT_POLL_MS - 5e3)) state.nextRefresh = Date.now();
  },

  // Called every few seconds: a stream silent for longer than its heartbeats allow is dead.
  watch() {
    for (const s of [...this.streams.values()]) {
      if (Date.now() - s.seen > LIVE_STALL_MS) this.fail(s, 'the stream went silent');
    }
    this.sync();
  },

  async read(s, url) {
    const res = await fetch(url, { headers: authHeaders('text/event-stream'), signal: s.ctrl.signal, cache: 'no-store' });
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
      card.lastBody = card.request();
      card.el.dataset.request = JSON.stringify(card.lastBody);
      card.showAnswer(card.lastBody, answer);
    }
    updateKpis();
    markRtUpdated();
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
