// Unit test of the page's answer -> chart data step (crates/ocp-metrics-server/assets/shape.js,
// with the real chart specs of config.js): alignment of series on the union of bucket labels,
// drilldown combinations, totals, derived ratios, summary figures, the CSV table and the
// hour-of-day fold of the "Peak hours" card. Run with `node --test tests/browser/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHARTS, PALETTE } from '../../crates/ocp-metrics-server/assets/config.js';
import { prepare, shape } from '../../crates/ocp-metrics-server/assets/shape.js';

const chart = (id) => CHARTS.find((c) => c.id === id);
const L = (day, hour) => `2024-01-${String(day).padStart(2, '0')} ${String(hour).padStart(2, '0')}:00:00.0`;

test('shape aligns every series on the sorted union of labels, with 0 where a bucket is missing', () => {
  const answer = [
    { metric: 'a', tags: {}, dps: { [L(1, 1)]: 2, [L(1, 0)]: 1 } },
    { metric: 'b', tags: {}, dps: { [L(1, 2)]: 5 } },
    { metric: 'not_requested', tags: {}, dps: { [L(1, 0)]: 9 } },
  ];
  const { labels, combos } = shape({ metrics: ['a', 'b'] }, answer, []);
  assert.deepEqual(labels, [L(1, 0), L(1, 1), L(1, 2)]);
  assert.equal(combos.length, 1);
  assert.deepEqual(combos[0].m, { a: [1, 2, 0], b: [0, 0, 5] });
});

test('shape keeps one combination per value of the drilldown dimensions', () => {
  const answer = [
    { metric: 'a', tags: { channel: 'voice', region: 'eu' }, dps: { [L(1, 0)]: 1 } },
    { metric: 'a', tags: { channel: 'chat', region: 'eu' }, dps: { [L(1, 1)]: 3 } },
    { metric: 'b', tags: { channel: 'voice', region: 'eu' }, dps: { [L(1, 1)]: 4 } },
  ];
  const { combos } = shape({ metrics: ['a', 'b'] }, answer, ['channel']);
  assert.deepEqual(combos.map((c) => c.tags.channel), ['voice', 'chat']);
  assert.deepEqual(combos[0].m, { a: [1, 0], b: [0, 4] });
  assert.deepEqual(combos[1].m, { a: [0, 3], b: [0, 0] });
});

test('prepare of the outcome card: stacked counts, containment ratio, totals, summary and CSV', () => {
  const spec = chart('ins-outcome');
  const answer = [
    { metric: 'dialogs', tags: {}, dps: { [L(1, 0)]: 10, [L(2, 0)]: 0 } },
    { metric: 'transferred', tags: {}, dps: { [L(1, 0)]: 2 } },
    { metric: 'terminated', tags: {}, dps: { [L(1, 0)]: 5 } },
    { metric: 'error', tags: {}, dps: { [L(1, 0)]: 1 } },
    { metric: 'other', tags: {}, dps: { [L(1, 0)]: 2 } },
  ];
  const p = prepare(spec, answer, []);
  assert.deepEqual(p.labels, [L(1, 0), L(2, 0)]);
  assert.deepEqual(p.xs, [Date.UTC(2024, 0, 1) / 1000, Date.UTC(2024, 0, 2) / 1000]);
  assert.deepEqual(p.series.map((s) => [s.label, s.kind, s.color]), [
    ['Transferred', 'count', '#f59e0b'], ['Terminated', 'count', '#10b981'], ['Error', 'count', '#ef4444'],
    ['Other', 'count', '#94a3b8'], ['Containment rate (%)', 'derived', '#0f172a']]);
  // No dialogs in the second bucket: no containment rate there (a gap, not 100 %).
  assert.deepEqual(p.series[4].values, [80, null]);
  assert.equal(p.series[4].overall, 80);
  assert.deepEqual(p.totals, { dialogs: 10, transferred: 2, terminated: 5, error: 1, other: 2 });
  // The total counts only plotted series: `dialogs` is requested for the ratio, not drawn.
  assert.equal(p.total, 10);
  assert.equal(p.stacked, true);
  assert.deepEqual(Object.fromEntries(spec.summary(p.totals, p.stats)),
    { Dialogs: '10', Containment: '80.0 %', 'Error rate': '10.0 %' });
  assert.deepEqual(p.table.header, ['bucket', 'Transferred', 'Terminated', 'Error', 'Other', 'Containment rate (%)']);
  assert.deepEqual(p.table.rows, [[L(1, 0), 2, 5, 1, 2, 80], [L(2, 0), 0, 0, 0, 0, null]]);
});

test('prepare with a drilldown labels each series by its tags, colours it from the palette and does not stack', () => {
  const spec = chart('ins-outcome');
  const answer = ['voice', 'chat'].flatMap((channel, i) => spec.metrics.map((metric) =>
    ({ metric, tags: { channel }, dps: { [L(1, 0)]: metric === 'dialogs' ? 4 : i + 1 } })));
  const p = prepare(spec, answer, ['channel']);
  assert.equal(p.series.length, 10);
  assert.deepEqual(p.series.slice(0, 5).map((s) => s.label), ['Transferred · voice', 'Terminated · voice', 'Error · voice',
    'Other · voice', 'Containment rate (%) · voice']);
  assert.deepEqual(p.series.map((s) => s.color), PALETTE.slice(0, 10));
  assert.deepEqual(p.series.filter((s) => s.kind === 'derived').map((s) => s.values), [[75], [50]]);
  assert.equal(p.stacked, false);
  assert.equal(p.total, 4 * 1 + 4 * 2);
});

test('prepare computes peak, latest and average over the summed count series', () => {
  const spec = chart('rt-sessions');
  const answer = [{ metric: 'session.initiated', tags: {}, dps: { [L(1, 0)]: 4, [L(1, 1)]: 6, [L(1, 2)]: 2 } }];
  const p = prepare(spec, answer, []);
  assert.deepEqual(p.stats, { peak: 6, latest: 2, avg: 4 });
  assert.deepEqual(Object.fromEntries(spec.summary(p.totals, p.stats)), { Peak: '6', Latest: '2', Average: '4.0' });
});

test('prepare of an empty answer has no labels, no series and no figures', () => {
  const p = prepare(chart('rt-sessions'), [], []);
  assert.deepEqual(p.labels, []);
  assert.deepEqual(p.series, []);
  assert.equal(p.total, 0);
  assert.ok(Number.isNaN(p.stats.peak) && Number.isNaN(p.stats.latest) && Number.isNaN(p.stats.avg));
  assert.deepEqual(Object.fromEntries(chart('rt-sessions').summary(p.totals, p.stats)), { Peak: '–', Latest: '–', Average: '–' });
});

test('the peak-hours card folds the buckets into the 24 hours of the day', () => {
  const spec = chart('ins-peak');
  const answer = [{ metric: 'sessions', tags: {}, dps: { [L(1, 9)]: 3, [L(2, 9)]: 4, [L(1, 3)]: 1, [L(2, 23)]: 2 } }];
  const p = prepare(spec, answer, []);
  assert.deepEqual(p.xs, [...Array(24).keys()]);
  const want = new Array(24).fill(0);
  want[3] = 1; want[9] = 7; want[23] = 2;
  assert.deepEqual(p.series[0].values, want);
  assert.equal(p.stats.peakHour, '09:00 (7)');
  assert.equal(p.stats.lowHour, '00:00 (0)');
  assert.equal(p.total, 10);
  assert.deepEqual(p.table.header, ['hour_of_day', 'Sessions']);
  assert.equal(p.table.rows.length, 24);
  assert.deepEqual(p.table.rows[9], ['09:00', 7]);
});
