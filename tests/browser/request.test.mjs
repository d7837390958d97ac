// Unit test of the query a chart card sends (crates/ocp-metrics-server/assets/request.js): time
// ranges in the chosen zone (across a DST change and a month end), the 48-hour clamp of the
// real-time window, filters and drilldown, and the curl command's quoting. Run with
// `node --test tests/browser/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHARTS } from '../../crates/ocp-metrics-server/assets/config.js';
import { buildRequest, curlFor, timeRange } from '../../crates/ocp-metrics-server/assets/request.js';

const chart = (id) => CHARTS.find((c) => c.id === id);
const view = { group: 'acme', tz: 'UTC', rtWindow: 120, rtDs: 'five_min', insRange: 30, insDs: 'day' };

test('a real-time window is wall time in the zone, across a daylight-saving change', () => {
  // 2024-03-31 01:30 UTC is 03:30 CEST, just after Berlin's clocks jumped from 02:00 to 03:00;
  // two hours earlier was 00:30 CET.
  const now = Date.UTC(2024, 2, 31, 1, 30, 0);
  assert.deepEqual(timeRange(chart('rt-sessions'), now, { ...view, tz: 'Europe/Berlin' }),
    { start: '2024/03/31 00:30:00', end: '2024/03/31 03:30:00', ds: 'five_min' });
});

test('the 48-hour real-time window stays three minutes inside the API limit', () => {
  const now = Date.UTC(2024, 5, 10, 12, 0, 0);
  assert.deepEqual(timeRange(chart('rt-dialogs'), now, { ...view, rtWindow: 2880, rtDs: 'hour' }),
    { start: '2024/06/08 12:03:00', end: '2024/06/10 12:00:00', ds: 'hour' });
});

test('an insights range is whole local days, today included', () => {
  // 2024-01-31 20:00 UTC is already 1 February, 01:30, in Kolkata.
  const now = Date.UTC(2024, 0, 31, 20, 0, 0);
  assert.deepEqual(timeRange(chart('ins-sessions'), now, { ...view, tz: 'Asia/Kolkata', insRange: 7, insDs: 'week' }),
    { start: '2024/01/26 00:00:00', end: '2024/02/01 01:30:00', ds: 'week' });
});

test('the peak-hours card always asks for the last 7 days by hour', () => {
  const now = Date.UTC(2024, 0, 10, 8, 15, 30);
  assert.deepEqual(timeRange(chart('ins-peak'), now, view),
    { start: '2024/01/03 08:15:30', end: '2024/01/10 08:15:30', ds: 'hour' });
});

test('filters: chosen values, a split without values as drilldown, test_flag as a boolean', () => {
  const spec = chart('rt-dialogs');
  const dims = ['flow_name', 'channel', 'region', 'test_flag'];
  const filters = {
    flow_name: { values: new Set(), split: false },
    channel: { values: new Set(['voice', 'chat']), split: false },
    region: { values: new Set(), split: true },
    test_flag: { value: 'false' },
  };
  const now = Date.UTC(2024, 0, 10, 8, 0, 0);
  assert.deepEqual(buildRequest(spec, dims, filters, view, now), {
    metrics: spec.metrics, filters: { channel: ['voice', 'chat'], region: [], test_flag: false },
    start: '2024/01/10 06:00:00', end: '2024/01/10 08:00:00', group: 'acme', downsampling: 'five_min',
    drilldown: true, timezone: 'UTC',
  });
  const none = { ...filters, channel: { values: new Set(), split: false }, region: { values: new Set(), split: false }, test_flag: { value: '' } };
  const body = buildRequest(spec, dims, none, view, now);
  assert.deepEqual(body.filters, {});
  assert.equal(body.drilldown, false);
});

test('the curl command quotes the URL and body for a POSIX shell', () => {
  assert.equal(curlFor('http://h:1', '/p', { group: "it's" }),
    `curl -sS -X POST 'http://h:1/p' \\\n  -H "Authorization: Bearer $TOKEN" \\\n  -H 'Content-Type: application/json' \\\n` +
    `  -d '{"group":"it'\\''s"}'`);
});
