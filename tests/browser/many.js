// tests/browser/many.js URL: thousands of rows (invctl start -r 1000
// -d 3 on a stack displaying 1000/s: 3,000 invoices). A page opened
// afterwards gets the recent ones, scrolls into all the older ones
// (infinite scroll), never holds more than 500 rows in the DOM, drops
// far-off invoices and fetches them again when scrolled back (a second
// scroll through shows them all again), and stays quick while more
// arrive.
'use strict';
const L = require('./lib');
const { assert } = L;
const url = process.argv[2];

async function idle() {
  for (let i = 0; i < 600; i++) {
    const s = JSON.parse(await L.getJSON(`${url}/api/state`));
    if (s.state === 'idle' && s.generated === s.target && s.target > 0)
      return;
    await L.sleep(100);
  }
  assert.fail('the cycle did not end');
}

L.run(async (keep) => {
  L.invctl('start', '-r', '1000', '-d', '3');
  await idle();
  const ctx = keep(await L.launch({ viewport: { width: 1440, height: 900 } }));
  const page = await L.firstPage(ctx);
  const pages = [];
  page.on('request', (r) => {
    const m = /\/api\/invoices\?(.*)$/.exec(r.url());
    if (m)
      pages.push(m[1]);
  });
  await page.goto(`${url}/`);
  await L.waitState(page, 'idle', 15000);
  let db = L.dbInvoices();
  assert.equal(db.length, 3000);
  await L.waitTop(page, db[0].id, 10000);

  const t0 = Date.now();
  const rows = await L.scan(page, { timeout: 150000 });
  const scanMs = Date.now() - t0;
  L.sameAsDatabase(rows, db);
  assert.ok(rows.maxRows <= 500, `${rows.maxRows} rows in the DOM`);
  assert.equal(await page.textContent('#grid-foot'), 'All 3,000 invoices shown.');
  const loads = pages.length;
  assert.ok(loads >= 14, `${loads} pages of older invoices for 2,950 rows`);

  // Back at the top: what was dropped on the way down comes again.
  await page.evaluate(() => { document.getElementById('grid-body').scrollTop = 0; });
  await page.waitForFunction(() => {
    const r = document.querySelector('#grid-canvas .row[data-index="0"]');
    return r && !document.querySelector('#grid-canvas .row-loading');
  }, null, { timeout: 20000 });
  const again = pages.slice(loads);
  assert.ok(again.length >= 1, 'nothing fetched again at the top');
  assert.match(again[0], new RegExp(`^before=${db[0].id + 1}&limit=200$`));
  // And all the way down again, from what is fetched anew.
  const second = await L.scan(page, { timeout: 150000 });
  L.sameAsDatabase(second, db, 'scrolled through again');
  const refetched = pages.length - loads;
  await page.evaluate(() => { document.getElementById('grid-body').scrollTop = 0; });

  // More arrive while 3,000 are known: no long stall, and in order.
  await page.evaluate(() => {
    window.__long = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries())
        window.__long.push(e.duration);
    }).observe({ type: 'longtask', buffered: false });
  });
  L.invctl('start', '-r', '100', '-d', '2');
  await idle();
  db = L.dbInvoices();
  assert.equal(db.length, 3200);
  await L.waitTop(page, db[0].id, 20000);
  await page.waitForFunction(() =>
    document.getElementById('grid-foot').textContent === 'All 3,200 invoices shown.',
  null, { timeout: 10000 });
  const long = await page.evaluate(() => window.__long);
  const worst = Math.max(0, ...long);
  assert.ok(worst < 250, `a long task of ${worst} ms`);
  const heap = await page.evaluate(() => performance.memory ? performance.memory.usedJSHeapSize : 0);
  console.log(`many: 3,000 rows scrolled in ${scanMs} ms, ${rows.steps} steps, ` +
    `${loads} API pages, at most ${rows.maxRows} rows in the DOM; ` +
    `${refetched} pages fetched again scrolling through once more; longest task while 200 more ` +
    `arrived ${Math.round(worst)} ms; JS heap ${(heap / 1048576).toFixed(1)} MiB`);
  await L.finish(ctx);
});
