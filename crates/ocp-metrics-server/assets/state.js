// OCP Metrics · the page's state: the user's choices (kept in localStorage), the bearer token
// (kept in sessionStorage, never in the address bar), the catalog and the server's clock.

const saved = (() => { try { return JSON.parse(localStorage.getItem('ocpm.ui') || '{}'); } catch { return {}; } })();
// Browsers may report legacy zone names (ICU's Asia/Calcutta, Asia/Katmandu); use the canonical ones.
const TZ_ALIASES = { 'Asia/Calcutta': 'Asia/Kolkata', 'Asia/Katmandu': 'Asia/Kathmandu', 'Asia/Saigon': 'Asia/Ho_Chi_Minh',
  'Asia/Rangoon': 'Asia/Yangon', 'Europe/Kiev': 'Europe/Kyiv', 'Atlantic/Faeroe': 'Atlantic/Faroe', 'Pacific/Enderbury': 'Pacific/Kanton',
  'America/Godthab': 'America/Nuuk', 'Australia/LHI': 'Australia/Lord_Howe', 'Etc/UTC': 'UTC', 'Etc/GMT': 'UTC', GMT: 'UTC', 'Etc/Universal': 'UTC' };
const canonicalTz = (z) => TZ_ALIASES[z] || z;
export const browserTz = canonicalTz(Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');

export const state = {
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
  catalogError: '',
  values: {}, // path -> {dimension: [values]}
  nextRefresh: 0,
};

export const persist = () => {
  const { group, tz, tab, rtWindow, rtDs, insRange, insDs } = state;
  try { localStorage.setItem('ocpm.ui', JSON.stringify({ group, tz, tab, rtWindow, rtDs, insRange, insDs })); } catch { /* private mode */ }
};

export const serverNow = () => Date.now() + state.clockOffset;

// The catalog's entry for an endpoint path ({} while the catalog is unavailable).
export const endpointInfo = (path) =>
  (state.catalog && (state.catalog.endpoints || []).find((x) => x.path === path)) || {};

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
