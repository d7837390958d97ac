// Browser test of the Reporting page.
//
//   node tests/browser/run.mjs BASE_URL TOKEN OUTDIR
//   node tests/browser/run.mjs mock dev-token OUTDIR   # starts mock-server.mjs on a free port
//
// Drives Debian's chromium (or $CHROMIUM) through playwright-core; no browser download.
// Prints `browser: 1 passed, 0 failed` and exits 0 on success; on failure prints the reason,
// saves OUTDIR/failure.png and exits 1. Always saves OUTDIR/dashboard.png (Real-time tab, full
// page) and OUTDIR/insights.png when it gets that far.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [baseArg, token, outdir] = process.argv.slice(2);
if (!baseArg || token === undefined || !outdir) {
  console.error('usage: node run.mjs BASE_URL TOKEN OUTDIR   (BASE_URL may be `mock`)');
  process.exit(2);
}
fs.mkdirSync(outdir, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 30000);

let mock = null;
async function startMock() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  mock = spawn(process.execPath, [path.join(here, 'mock-server.mjs'), '--port', '0', '--token', token], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    mock.stdout.on('data', (d) => {
      buf += d;
      const m = /listening on (http:\/\/\S+)/.exec(buf);
      if (m) resolve(m[1]);
    });
    mock.on('exit', (code) => reject(new Error(`mock server exited with ${code}`)));
  });
}

class Failure extends Error {}
const mockMode = baseArg === 'mock';
const check = (cond, msg) => { if (!cond) throw new Failure(msg); };

const step = (name) => console.log(`  - ${name}`);

// Active sessions over the last hour of each group the token sees (as the page itself asks).
async function busiestGroup(base) {
  const auth = { Authorization: `Bearer ${token}` };
  const cat = await (await fetch(`${base}/api/v1/catalog`, { headers: auth })).json();
  const now = Date.now();
  const f = (ms) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ').replace(/-/g, '/');
  const sums = {};
  for (const group of cat.groups.slice(0, 12)) {
    const body = { metrics: ['session.initiated'], filters: {}, group, downsampling: 'five_min', timezone: 'UTC', start: f(now - 3600e3), end: f(now + 300e3) };
    const r = await fetch(`${base}/metrics-api/v3/realtime/metrics/sessions`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    sums[group] = Object.values((await r.json())[0].dps).reduce((a, b) => a + b, 0);
  }
  const group = Object.keys(sums).reduce((a, b) => (sums[b] > sums[a] ? b : a));
  return { group, sums };
}

// `count` miniApp invocations in `group`, started and ended now, through the ingest API.
async function ingestMiniapps(base, group, count) {
  const now = new Date().toISOString();
  const run = Date.now();
  const lines = [...Array(count).keys()].map((i) => JSON.stringify({
    id: `browser-live-${run}-${i}`, type: 'miniapp_end', time: now, started_at: now, group, session_id: `browser-live-${run}`,
    channel: 'omIVR', region: 'us1', miniapp_name: 'LiveCheck', miniapp_id: 'live-check', miniapp_type: 'Announcement',
    locale: 'en-US', result: 'success' }));
  const r = await fetch(`${base}/ingest/v1/events`, { method: 'POST', body: lines.join('\n') + '\n',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-ndjson' } });
  const answer = await r.json();
  check(r.status === 200 && answer.accepted === count, `ingest: ${r.status} ${JSON.stringify(answer)}`);
}

async function main(page, base) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  // The mock server has no live endpoint: there, the 404 of /api/v1/live is the expected path to polling.
  const expected = (url) => mockMode && /\/api\/v1\/live/.test(url || '');
  page.on('console', (m) => { if (m.type() === 'error' && !expected(m.location().url)) errors.push(`console error: ${m.text()}`); });
  const queries = []; // every query the page sends, to tell a live update from a poll
  page.on('request', (r) => { if (r.url().includes('/metrics-api/')) queries.push(r.url()); });

  const waitMode = async (mode) => {
    try {
      await page.waitForFunction((m) => document.querySelector('[data-testid="rt-live"]')?.dataset.mode === m, mode, { timeout: TIMEOUT, polling: 100 });
    } catch {
      const el = await page.$eval('[data-testid="rt-live"]', (e) => `${e.dataset.mode}: ${e.title}`).catch(() => 'missing');
      throw new Failure(`the live badge did not say ${mode}; it is ${el}`);
    }
  };
  const attrs = (id) => page.evaluate((id) => {
    const el = document.querySelector(`[data-testid="chart-${id}"]`);
    if (!el) return null;
    const d = el.dataset;
    return { state: d.state, total: Number(d.total), request: d.request ? JSON.parse(d.request) : null, rawRequest: d.request,
      firstLabel: d.firstLabel, lastLabel: d.lastLabel, series: Number(d.series), error: d.error || '' };
  }, id);
  // Waits until the card is ready and `pred` (on the parsed attributes) holds. Polls from here
  // with `page.evaluate` rather than `page.waitForFunction`, which builds its predicate with eval
  // inside the page: the page's Content-Security-Policy forbids eval, and the test runs under it.
  const waitCard = async (id, what, pred, arg = null) => {
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const a = await attrs(id);
      if (a && a.state === 'ready' && pred(a, arg)) return a;
      if (Date.now() > deadline) throw new Failure(`chart-${id}: timed out waiting for ${what}; card is ${JSON.stringify(a)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  step('open the page with #token=');
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`, { waitUntil: 'domcontentloaded' });
  const rt0 = await waitCard('rt-sessions', 'a non-zero total', (a) => a.total > 0);
  const ins0 = await waitCard('ins-sessions', 'a non-zero total', (a) => a.total > 0);
  check(!page.url().includes(token) || token === '', 'the token is still in the address bar');
  check(rt0.request.metrics.includes('session.initiated'), `rt-sessions request has no session.initiated: ${rt0.rawRequest}`);
  check(ins0.request.metrics.includes('sessions') && ins0.request.metrics.includes('duration10sec'), `ins-sessions request: ${ins0.rawRequest}`);
  for (const id of ['rt-dialogs', 'rt-miniapps', 'ins-outcome', 'ins-miniapps', 'ins-peak']) await waitCard(id, 'its first answer', () => true);

  step('the favicon is served as SVG');
  const icon = await page.evaluate(async () => {
    const href = document.querySelector('link[rel="icon"]')?.getAttribute('href');
    const r = href ? await fetch(href) : null;
    return { href, status: r && r.status, type: r && r.headers.get('content-type') };
  });
  check(icon.status === 200 && icon.type === 'image/svg+xml', `favicon: ${JSON.stringify(icon)}`);

  if (mockMode) {
    step('without a live endpoint the real-time tab says polling');
    await waitMode('polling');
  } else {
    step('the busiest group is shown first');
    const busiest = await busiestGroup(base);
    const shown = await page.$eval('[data-testid="group-select"]', (el) => el.value);
    check(shown === busiest.group, `the page opened on ${shown}, the busiest group is ${busiest.group} (${JSON.stringify(busiest.sums)})`);

    step('live: an ingested event changes a number on the page without a reload');
    await waitMode('live');
    const before = await waitCard('rt-miniapps', 'its answer', () => true);
    const sent = queries.length;
    const count = 40;
    await ingestMiniapps(base, shown, count);
    const after = await waitCard('rt-miniapps', `a total of at least ${before.total + count}`, (a, want) => a.total >= want, before.total + count);
    check(queries.length === sent, `the change came from ${queries.length - sent} queries, not from the live stream: ${queries.slice(sent).join(', ')}`);
    check(await page.evaluate(() => performance.getEntriesByType('navigation').length) === 1, 'the page was reloaded');
    const mode = await page.$eval('[data-testid="rt-live"]', (el) => el.dataset.mode);
    check(mode === 'live', `the live badge says ${mode}`);
    console.log(`    rt-miniapps total ${before.total} -> ${after.total} after ingesting ${count} invocations`);
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(outdir, 'live.png'), fullPage: true });
  }

  step('filter rt-sessions on channel=omIVR');
  await page.click('[data-testid="filters-btn-rt-sessions"]');
  await page.click('[data-testid="filter-btn-rt-sessions-channel"]');
  await page.check('[data-testid="filter-rt-sessions-channel"] input[value="omIVR"]');
  const rt1 = await waitCard('rt-sessions', 'a request with channel=["omIVR"]',
    (a) => JSON.stringify(a.request.filters.channel) === '["omIVR"]');
  check(rt1.rawRequest !== rt0.rawRequest, 'the request did not change after filtering');
  check(rt1.total <= rt0.total, `filtered total ${rt1.total} > unfiltered total ${rt0.total}`);
  await page.click('.brand'); // close the drop-down

  step('show the API request as curl');
  await page.click('[data-testid="api-btn-rt-sessions"]');
  const curl = await page.textContent('[data-testid="api-curl"]');
  check(curl.includes('-H "Authorization: Bearer $TOKEN"'), `curl lacks the Authorization header: ${curl}`);
  check(curl.includes('/metrics-api/v3/realtime/metrics/sessions') && curl.includes('"channel":["omIVR"]'), `curl lacks path or filter: ${curl}`);
  await page.click('[data-testid="api-close"]');

  step('export CSV');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT }), page.click('[data-testid="csv-btn-rt-sessions"]')]);
  const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
  check(csv[0].startsWith('bucket,') && csv.length > 1, `unexpected CSV: ${csv.slice(0, 3).join(' / ')}`);

  step('change the time zone to Asia/Kolkata');
  check(rt1.request.timezone !== 'Asia/Kolkata', 'the page already used Asia/Kolkata; cannot test the change');
  await page.selectOption('[data-testid="tz-select"]', 'Asia/Kolkata');
  const rt2 = await waitCard('rt-sessions', 'a request in Asia/Kolkata', (a) => a.request.timezone === 'Asia/Kolkata');
  check(rt2.firstLabel && rt2.firstLabel !== rt1.firstLabel, `bucket labels did not change: ${rt1.firstLabel} -> ${rt2.firstLabel}`);
  check(JSON.stringify(rt2.request.filters.channel) === '["omIVR"]', 'the channel filter was lost on time-zone change');
  await waitCard('ins-sessions', 'a request in Asia/Kolkata', (a) => a.request.timezone === 'Asia/Kolkata' && a.total > 0);

  step('drill down rt-dialogs by channel');
  await page.click('[data-testid="filters-btn-rt-dialogs"]');
  await page.click('[data-testid="filter-btn-rt-dialogs-channel"]');
  await page.check('[data-testid="split-rt-dialogs-channel"]');
  await waitCard('rt-dialogs', 'a drilldown request', (a) => a.request.drilldown === true && Array.isArray(a.request.filters.channel));
  await page.click('.brand');

  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(outdir, 'dashboard.png'), fullPage: true });

  step('Insights tab');
  await page.click('[data-testid="tab-insights"]');
  await waitCard('ins-peak', 'a non-zero total', (a) => a.total > 0);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(outdir, 'insights.png'), fullPage: true });

  check(errors.length === 0, `errors in the page:\n    ${errors.join('\n    ')}`);
}

let browser;
let page;
let code = 0;
try {
  const base = (mockMode ? await startMock() : baseArg).replace(/\/+$/, '');
  console.log(`browser test against ${base}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: 'UTC', locale: 'en-US', acceptDownloads: true });
  page = await context.newPage();
  await main(page, base);
  console.log('browser: 1 passed, 0 failed');
} catch (e) {
  code = 1;
  console.log(`FAILED: ${e instanceof Failure ? e.message : e.stack || e}`);
  if (page) await page.screenshot({ path: path.join(outdir, 'failure.png'), fullPage: true }).catch(() => {});
  console.log('browser: 0 passed, 1 failed');
} finally {
  if (browser) await browser.close().catch(() => {});
  if (mock) mock.kill('SIGTERM');
}
process.exit(code);
