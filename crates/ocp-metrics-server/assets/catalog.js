// OCP Metrics · what the page learns from the catalog endpoints: the groups the token may read,
// each endpoint's dimensions and downsamplings, the server's clock, and the values seen per
// dimension (the filters' choices).
import { api } from './api.js';
import { CHARTS, RT } from './config.js';
import { $, h, showBanner } from './dom.js';
import { partsIn, wall } from './format.js';
import { serverNow, state } from './state.js';

// Reads GET /api/v1/catalog into the state and fills the group selector. Without a chosen group
// the page opens on the busiest one.
export async function loadCatalog() {
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

// Reads the values seen for the chosen group into the state, then refreshes the cards' filters.
export async function loadValues(cards) {
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
