// Unit test of the page's number and time helpers (crates/ocp-metrics-server/assets/format.js).
// Run with `node --test tests/browser/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fmtDur, fmtInt, fmtNum, fmtPct, labelTs, partsIn, ratio, tagText, tsText, wall }
  from '../../crates/ocp-metrics-server/assets/format.js';

test('figures are formatted, and anything not finite shows as a dash', () => {
  assert.equal(fmtInt(1234567.4), '1,234,567');
  assert.equal(fmtNum(2 / 3, 2), '0.67');
  assert.equal(fmtPct(0.1234), '12.3 %');
  assert.equal(fmtDur(125.4), '2m 05s');
  for (const f of [fmtInt, fmtNum, fmtPct, fmtDur]) {
    assert.equal(f(NaN), '–');
    assert.equal(f(Infinity), '–');
  }
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(3, 4), 0.75);
});

test('bucket labels read as UTC instants and print back the same wall time', () => {
  const ts = labelTs('2024-03-27 10:05:00.0');
  assert.equal(ts, Date.UTC(2024, 2, 27, 10, 5, 0) / 1000);
  assert.equal(tsText(ts, true), '2024-03-27 10:05');
  assert.equal(tsText(ts, false), '2024-03-27');
  assert.ok(Number.isNaN(labelTs('not a label')));
});

test('wall time of an instant in a zone with a 45-minute offset, in the API format', () => {
  // Kathmandu is UTC+05:45.
  assert.equal(wall(partsIn(Date.UTC(2024, 11, 31, 18, 20, 5), 'Asia/Kathmandu')), '2025/01/01 00:05:05');
});

test('drilldown tags print in the order of the dimensions, skipping absent ones', () => {
  assert.equal(tagText({ region: 'eu', channel: 'voice' }, ['channel', 'locale', 'region']), 'voice · eu');
});
