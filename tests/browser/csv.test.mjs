// Unit test of the page's CSV cells (crates/ocp-metrics-server/assets/csv.js): formula
// neutralisation (OWASP "CSV injection") and quoting. Run with `node --test tests/browser/`;
// .ci/run runs it. Needs no packages: csv.js is an ES module without browser dependencies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csvCell, csvText } from '../../crates/ocp-metrics-server/assets/csv.js';

test('a text cell that a spreadsheet would run as a formula is prefixed with a quote', () => {
  const cases = [
    ['=HYPERLINK("http://evil","x")', `"'=HYPERLINK(""http://evil"",""x"")"`],
    ['+1+2', "'+1+2"],
    ['-2+3', "'-2+3"],
    ['@SUM(A1:A2)', "'@SUM(A1:A2)"],
    ['\t=1', "'\t=1"],
    ['\r=1', `"'\r=1"`],
  ];
  for (const [cell, want] of cases) assert.equal(csvCell(cell), want, JSON.stringify(cell));
});

test('ordinary cells are unchanged, or quoted when they hold a separator', () => {
  assert.equal(csvCell('Banking'), 'Banking');
  assert.equal(csvCell('a=b'), 'a=b');
  assert.equal(csvCell('2024-03-27 10:00:00.0'), '2024-03-27 10:00:00.0');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell('two\nlines'), '"two\nlines"');
  assert.equal(csvCell(null), '');
  assert.equal(csvCell(undefined), '');
});

test('numbers are written as they are, even negative ones', () => {
  assert.equal(csvCell(42), '42');
  assert.equal(csvCell(-1), '-1');
  assert.equal(csvCell(0), '0');
});

test('a table is one line per row with a final newline', () => {
  assert.equal(csvText([['label', 'value'], ['=1+1', 3]]), "label,value\n'=1+1,3\n");
});
