// tests/browser/lib.js: what the browser tests share. Debian's chromium
// driven by playwright-core (no browser download), a fresh profile in
// $BROWSER_TMP, the page in en-US and Asia/Kolkata (UTC+05:30, so a
// page that showed UTC would be caught), and exact expectations built
// from the database.
'use strict';
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const LOCALE = 'en-US';
const TZ = 'Asia/Kolkata';

function chromiumPath() {
  if (process.env.CHROMIUM)
    return process.env.CHROMIUM;
  return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
}

// A browser with a fresh profile; the first page is ready in it.
async function launch(opts = {}) {
  const base = process.env.BROWSER_TMP || os.tmpdir();
  const profile = fs.mkdtempSync(path.join(base, 'profile-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: opts.viewport || { width: 1440, height: 900 },
    locale: LOCALE,
    timezoneId: TZ,
    colorScheme: opts.colorScheme || 'light',
  });
  ctx.errors = [];
  ctx.on('page', (p) => watch(ctx, p));
  for (const p of ctx.pages())
    watch(ctx, p);
  return ctx;
}

function watch(ctx, page) {
  page.on('pageerror', (e) => ctx.errors.push(`${page.url()}: ${e.message}`));
}

async function firstPage(ctx) {
  return ctx.pages()[0] || ctx.newPage();
}

// A browser (kept for run()'s cleanup) with the page open at
// url + where, once it shows the stack idle and live.
async function open(keep, url, width, height, where = '/') {
  const ctx = keep(await launch({ viewport: { width, height } }));
  const page = await firstPage(ctx);
  await page.goto(`${url}${where}`);
  await waitState(page, 'idle', 15000);
  return { ctx, page };
}

// Ends the run: no uncaught error on any page, then close.
async function finish(ctx) {
  assert.deepEqual(ctx.errors, [], 'uncaught errors in the page');
  await ctx.close();
}

// Runs main(); any failure prints and exits 1, with the browser closed.
function run(main) {
  let ctx = null;
  const keep = (c) => { ctx = c; return c; };
  main(keep).then(() => process.exit(0), async (e) => {
    console.error(e && e.stack ? e.stack : String(e));
    if (ctx)
      await ctx.close().catch(() => {});
    process.exit(1);
  });
}

/* ---- the system under test ---- */

function sh(cmd, args) {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

function sql(query) {
  const out = sh('psql', [process.env.DATABASE_URL, '-X', '-q', '-tA',
    '-v', 'ON_ERROR_STOP=1', '-F', '\t', '-c', query]);
  return out.split('\n').filter((l) => l !== '');
}

// Every invoice in the database, newest first, as the page should show it.
function dbInvoices() {
  return sql(`SELECT id, invoice_number,
      to_char(invoice_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      seller_name, buyer_name, subtotal, vat_amount, total_amount
      FROM invoices ORDER BY id DESC`).map((l) => {
    const [id, num, date, seller, buyer, sub, vat, tot] = l.split('\t');
    return {
      id: Number(id), num, date: localDate(date), seller, buyer,
      sub: money(sub), vat: money(vat), tot: money(tot),
    };
  });
}

function dbCount() {
  return Number(sql('SELECT count(*) FROM invoices')[0]);
}

function invctl(...args) {
  return sh('invctl', args);
}

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  assert.equal(r.status, 200, `GET ${url}`);
  return r.text();
}

/*
 * The expected text, built without Intl.NumberFormat: en-US groups
 * thousands with commas and keeps both decimals.
 */
function money(s) {
  const m = /^(\d+)\.(\d\d)$/.exec(s);
  assert.ok(m, `not an amount: ${s}`);
  return `${m[1].replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${m[2]}`;
}

function integer(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const dateFmt = new Intl.DateTimeFormat(LOCALE, {
  timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});

function localDate(iso) {
  return dateFmt.format(new Date(iso.replace(/(\.\d{3})\d+/, '$1')));
}

// The amount literals of a stats JSON text, as written.
function statsOf(text) {
  const get = (k) => {
    const m = new RegExp(`"${k}":(\\d+(?:\\.\\d\\d)?)`).exec(text);
    assert.ok(m, `${k} in ${text}`);
    return m[1];
  };
  return {
    count: integer(get('count')),
    total: money(get('total_amount')),
    vat: money(get('vat_amount')),
    average: money(get('average_amount')),
  };
}

/* ---- the page ---- */

// The control panel as a person sees it.
async function panel(page) {
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    return {
      state: $('status').dataset.state,
      text: $('status-text').textContent,
      conn: $('conn').dataset.conn,
      start: !$('start').disabled,
      stop: !$('stop').disabled,
      progress: $('progress-figure').textContent,
      message: $('message').hidden ? null : $('message').textContent,
    };
  });
}

async function cards(page) {
  return page.evaluate(() => ({
    count: document.getElementById('stat-count').textContent,
    total: document.getElementById('stat-total').textContent,
    vat: document.getElementById('stat-vat').textContent,
    average: document.getElementById('stat-average').textContent,
  }));
}

async function waitState(page, state, timeout = 60000) {
  await page.waitForFunction((s) =>
    document.getElementById('status').dataset.state === s &&
    document.getElementById('conn').dataset.conn === 'live', state,
  { timeout, polling: 50 });
}

// The id of the newest row in the grid (index 0), or 0.
async function topId(page) {
  return page.evaluate(() => {
    const r = document.querySelector('#grid-canvas .row[data-index="0"]');
    return r ? Number(r.dataset.id) : 0;
  });
}

// Until the newest row in the grid has an id of at least id.
async function waitTopAtLeast(page, id, timeout = 60000) {
  await page.waitForFunction((least) => {
    const r = document.querySelector('#grid-canvas .row[data-index="0"]');
    return r && Number(r.dataset.id) >= least;
  }, id, { timeout, polling: 50 });
}

async function waitTop(page, id, timeout = 60000) {
  await page.waitForFunction((want) => {
    const r = document.querySelector('#grid-canvas .row[data-index="0"]');
    return r && Number(r.dataset.id) === want;
  }, id, { timeout, polling: 50 });
}

/*
 * Records every change of the status and every row added to the grid,
 * with its classes, and when row-new leaves a row.
 */
async function record(page) {
  await page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const rec = { status: [], added: [], unmarked: [] };
    window.__rec = rec;
    const snap = () => {
      const s = {
        t: performance.now(), state: $('status').dataset.state,
        text: $('status-text').textContent,
        start: !$('start').disabled, stop: !$('stop').disabled,
        progress: $('progress-figure').textContent,
        busy: $('start').getAttribute('aria-busy') === 'true' ||
          $('stop').getAttribute('aria-busy') === 'true',
      };
      const last = rec.status[rec.status.length - 1];
      if (!last || last.text !== s.text || last.start !== s.start ||
          last.stop !== s.stop || last.state !== s.state || last.busy !== s.busy)
        rec.status.push(s);
    };
    snap();
    new MutationObserver(snap).observe($('panel'),
      { subtree: true, childList: true, characterData: true, attributes: true });
    new MutationObserver((muts) => {
      const t = performance.now();
      for (const m of muts) {
        if (m.type === 'childList') {
          for (const n of m.addedNodes)
            if (n.classList && n.classList.contains('row'))
              rec.added.push({ t, id: Number(n.dataset.id), index: Number(n.dataset.index),
                isNew: n.classList.contains('row-new') });
        } else if (m.type === 'attributes' && m.oldValue &&
            m.oldValue.includes('row-new') && !m.target.classList.contains('row-new')) {
          rec.unmarked.push({ t, id: Number(m.target.dataset.id) });
        }
      }
    }).observe($('grid-canvas'), { childList: true, subtree: true,
      attributes: true, attributeFilter: ['class'], attributeOldValue: true });
  });
}

async function recorded(page) {
  return page.evaluate(() => window.__rec);
}

/*
 * Scrolls the grid from the top to the very end (infinite scroll
 * included) and returns every row by its position, newest first.
 * At each step: no id twice in the DOM, each row where its index puts
 * it, ids falling as the index grows, no more than 500 rows rendered,
 * and a row met again is the same row. step is the share of the view
 * scrolled at once.
 */
async function scan(page, opts = {}) {
  const step = opts.step || 0.9;
  const byIndex = new Map();
  let maxRows = 0, steps = 0;
  const deadline = Date.now() + (opts.timeout || 120000);
  await page.evaluate(() => { document.getElementById('grid-body').scrollTop = 0; });
  for (;;) {
    assert.ok(Date.now() < deadline, `the scan did not reach the end: ${byIndex.size} rows seen`);
    await page.waitForFunction(() => {
      const b = document.getElementById('grid-body');
      const rowH = document.getElementById('grid-probe').getBoundingClientRect().height;
      const n = Math.round(parseFloat(document.getElementById('grid-canvas').style.height || '0') / rowH);
      const have = new Set();
      for (const r of b.querySelectorAll('.row')) {
        if (r.classList.contains('row-loading'))
          return false;
        have.add(Number(r.dataset.index));
      }
      const lo = Math.floor(b.scrollTop / rowH);
      const hi = Math.min(n, Math.ceil((b.scrollTop + b.clientHeight) / rowH));
      for (let i = lo; i < hi; i++)
        if (!have.has(i))
          return false;
      return true;
    }, null, { timeout: 20000, polling: 20 });
    const snap = await page.evaluate(() => {
      const b = document.getElementById('grid-body');
      const rowH = document.getElementById('grid-probe').getBoundingClientRect().height;
      const rows = [...b.querySelectorAll('.row')].map((r) => {
        const c = (k) => r.querySelector(`.c-${k}`).textContent;
        const m = /translateY\(([-\d.]+)px\)/.exec(r.style.transform);
        return {
          index: Number(r.dataset.index), id: Number(r.dataset.id),
          y: m ? Number(m[1]) : NaN,
          row: { id: Number(r.dataset.id), num: c('num'), date: c('date'),
            seller: c('seller'), buyer: c('buyer'), sub: c('sub'), vat: c('vat'),
            tot: c('tot') },
        };
      });
      return {
        rows, rowH, top: b.scrollTop,
        atBottom: b.scrollTop + b.clientHeight >= b.scrollHeight - 2,
        foot: document.getElementById('grid-foot').textContent,
      };
    });
    steps++;
    maxRows = Math.max(maxRows, snap.rows.length);
    assert.ok(snap.rows.length <= 500, `${snap.rows.length} rows in the DOM`);
    const ids = new Set(snap.rows.map((r) => r.id));
    assert.equal(ids.size, snap.rows.length, 'an id twice in the DOM');
    const sorted = [...snap.rows].sort((a, b) => a.index - b.index);
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i];
      assert.ok(Math.abs(r.y - r.index * snap.rowH) < 0.5,
        `row ${r.index} at ${r.y}, not ${r.index * snap.rowH}`);
      if (i > 0) {
        assert.equal(r.index, sorted[i - 1].index + 1, 'rendered rows not contiguous');
        assert.ok(r.id < sorted[i - 1].id, `id ${r.id} below id ${sorted[i - 1].id}`);
      }
      const seen = byIndex.get(r.index);
      if (seen)
        assert.deepEqual(r.row, seen, `row ${r.index} changed while scrolling`);
      else
        byIndex.set(r.index, r.row);
    }
    if (snap.atBottom && /^All [\d,]+ invoices shown\.$|^The only invoice/.test(snap.foot))
      break;
    if (opts.onStep)
      await opts.onStep(snap);
    await page.evaluate((f) => {
      const b = document.getElementById('grid-body');
      b.scrollTop += Math.max(1, Math.floor(b.clientHeight * f));
    }, step);
  }
  const list = [];
  for (let i = 0; i < byIndex.size; i++) {
    assert.ok(byIndex.has(i), `row ${i} never shown`);
    list.push(byIndex.get(i));
  }
  list.maxRows = maxRows;
  list.steps = steps;
  return list;
}

// The grid, scrolled through, against the database: each invoice once.
function sameAsDatabase(rows, db, what = 'grid') {
  assert.deepEqual(rows.map((r) => r.id), db.map((r) => r.id),
    `${what}: the ids, newest first, are not the database's`);
  for (let i = 0; i < db.length; i++)
    assert.deepEqual(rows[i], db[i], `${what}: row ${i}`);
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

module.exports = {
  assert, launch, firstPage, open, finish, run, sql, sh, dbInvoices, dbCount,
  invctl, getJSON, money, integer, localDate, statsOf, panel, cards,
  waitState, topId, waitTop, waitTopAtLeast, record, recorded, scan, sameAsDatabase, sleep,
};
