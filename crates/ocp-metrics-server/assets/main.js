// OCP Metrics · Reporting page: wiring of the controls, tabs and refresh timers.
//
// Plain JS modules, no build step. The page is a client of the public Metrics API v3, with the
// same bearer token as any other client, plus the catalog endpoints that list groups,
// dimensions and the values seen for each dimension.
import { buildCards, cards, dialogBody, updateKpis } from './cards.js';
import { loadCatalog, loadValues } from './catalog.js';
import { BATCH, DS_LABELS, INS_RANGES, RT, RT_WINDOWS, ZONES } from './config.js';
import { $, h } from './dom.js';
import { live, markRtUpdated } from './live.js';
import { browserTz, endpointInfo, persist, state } from './state.js';

const loadTab = (tab) => Promise.all(cards.filter((c) => c.spec.tab === tab).map((c) => c.load()));
function refreshRt() {
  markRtUpdated();
  return loadTab('rt');
}
const reloadAll = () => Promise.all([refreshRt(), loadTab('ins')]);

// After every answered (or failed) query of a card.
function cardLoaded(card) {
  updateKpis();
  if (card.spec.tab === 'rt') live.sync();
}

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
    await loadValues(cards);
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
  $('#api-copy-json').addEventListener('click', () => copy(JSON.stringify(dialogBody())));
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
  buildCards(cardLoaded);
  setTab(state.tab);
  const values = loadValues(cards);
  await reloadAll();
  await values;
}

wire();
start();
