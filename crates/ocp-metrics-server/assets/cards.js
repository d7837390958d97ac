// OCP Metrics · the chart cards and the KPI tiles above them. Each card exposes, for tests and
// debugging: data-testid="chart-<id>", data-state (loading|ready|error), data-request (the JSON
// body it last sent), data-total (sum of every plotted count value), data-first-label and
// data-last-label (first and last bucket label of the answer), data-series (series plotted).
import { ApiError, api } from './api.js';
import { CHARTS, KPIS } from './config.js';
import { csvText } from './csv.js';
import { $, h, showBanner } from './dom.js';
import { uplotFor } from './plot.js';
import { buildRequest, curlFor } from './request.js';
import { prepare } from './shape.js';
import { endpointInfo, serverNow, state } from './state.js';

// The cards of both tabs, in page order (replaced by `buildCards`).
export let cards = [];

// Builds every card afresh (the catalog may have changed the dimensions). `onLoaded(card)` runs
// after each query of a card has been answered or has failed.
export function buildCards(onLoaded) {
  for (const c of cards) c.destroyPlot();
  cards = CHARTS.map((spec) => new Card(spec, onLoaded));
  $('#grid-rt').replaceChildren(...cards.filter((c) => c.spec.tab === 'rt').map((c) => c.el));
  $('#grid-ins').replaceChildren(...cards.filter((c) => c.spec.tab === 'ins').map((c) => c.el));
  updateKpis();
}

// The KPI tiles: summary figures of the cards, as KPIS lists them.
export function updateKpis() {
  for (const tab of ['rt', 'ins']) {
    $(`#kpis-${tab}`).replaceChildren(...KPIS[tab].map(([cid, key, label]) => {
      const card = cards.find((c) => c.spec.id === cid);
      const v = card && card.summary[key];
      return h('div', { class: 'kpi', 'data-testid': `kpi-${cid}-${key.toLowerCase().replace(/[^a-z]+/g, '-')}` },
        h('div', { class: 'kpi-label', text: label }), h('div', { class: 'kpi-value', text: v == null ? '–' : v }));
    }));
  }
}

// The request body shown in the API dialog (for its "Copy JSON" button).
export const dialogBody = () => openDialogCard && openDialogCard.lastBody;

let openDialogCard = null;

class Card {
  constructor(spec, onLoaded) {
    this.spec = spec;
    this.onLoaded = onLoaded;
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
    const body = this.request();
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
    this.onLoaded(this);
  }

  // The query this card sends now.
  request() {
    return buildRequest(this.spec, this.dims, this.filters, state, serverNow());
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
      this.u = uplotFor(this.spec, p, width, height, this.plotEl);
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
    const body = this.lastBody || this.request();
    openDialogCard = this;
    $('#api-title').textContent = `${this.spec.title} · POST ${this.spec.path}`;
    $('#api-curl').textContent = curlFor(location.origin, this.spec.path, body);
    $('#api-json').textContent = JSON.stringify(body, null, 2);
    $('#api-copied').textContent = '';
    $('#api-dialog').showModal();
  }

  exportCsv() {
    if (!this.prepared) return;
    const t = this.prepared.table;
    const csv = csvText([t.header, ...t.rows]);
    const a = h('a', { href: URL.createObjectURL(new Blob([csv], { type: 'text/csv' })),
      download: `${this.spec.id}_${state.group}_${(this.lastBody.start || '').slice(0, 10).replace(/\//g, '-')}.csv` });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
}
