// OCP Metrics · CSV cells for the page's export. Pure functions, unit-tested by
// tests/browser/csv.test.mjs.
//
// Labels come from event producers, so a cell may be hostile: a spreadsheet runs a cell that
// starts with `=`, `+`, `-` or `@` as a formula, and a leading tab or carriage return can hide
// one. Following OWASP's "CSV injection" advice, such a text cell is prefixed with `'`, which
// spreadsheets show as text. Numbers are never formulas and are written as they are.

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

// One CSV cell: empty for null/undefined, neutralised and quoted as needed otherwise.
export const csvCell = (v) => {
  if (v == null) return '';
  if (typeof v === 'number') return String(v);
  let s = String(v);
  if (FORMULA_START.test(s)) s = `'${s}`;
  return NEEDS_QUOTES.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

// A whole table (an array of rows, each an array of cells) as CSV text, one line per row.
export const csvText = (rows) => rows.map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
