// tests/browser/resume.js URL INVSERVE_PID: in the middle of a cycle
// (invctl start -r 50 -d 6: 300 invoices), the server is killed
// (invctl up starts it again) and later the page is reloaded. The page
// says it is reconnecting, resumes, and in the end, scrolled through,
// has every invoice exactly once, as the database has them.
'use strict';
const L = require('./lib');
const { assert } = L;
const [url, pidArg] = process.argv.slice(2);
const invserve = Number(pidArg);

L.run(async (keep) => {
  assert.ok(invserve > 0, 'usage: resume.js URL INVSERVE_PID');
  const { ctx, page } = await L.open(keep, url, 1440, 900);
  L.invctl('start', '-r', '50', '-d', '6');
  await L.waitTopAtLeast(page, 40, 30000);

  // The connection is lost: the page says so and rests its buttons.
  process.kill(invserve, 'SIGKILL');
  await page.waitForFunction(() =>
    document.getElementById('conn').dataset.conn === 'reconnecting', null,
  { timeout: 10000, polling: 20 });
  const lost = await L.panel(page);
  assert.deepEqual([lost.conn, lost.start, lost.stop], ['reconnecting', false, false]);
  assert.equal(await page.textContent('#conn'), 'Reconnecting…');
  assert.ok(await page.isVisible('#conn'), 'the reconnecting badge is not shown');
  const before = await L.topId(page);
  await page.waitForFunction(() =>
    document.getElementById('conn').dataset.conn === 'live', null,
  { timeout: 30000, polling: 50 });
  assert.equal(await page.isVisible('#conn'), false, 'the badge stays once live');

  // Then a reload, further on.
  await L.waitTopAtLeast(page, Math.max(before + 60, 150), 60000);
  const reloadedAt = await L.topId(page);
  await page.reload();

  await L.waitState(page, 'idle', 90000);
  const db = L.dbInvoices();
  assert.equal(db.length, 300);
  await L.waitTop(page, db[0].id, 10000);
  const rows = await L.scan(page);
  L.sameAsDatabase(rows, db);
  console.log(`resume: server killed at row ${before}, page reloaded near ${reloadedAt}; ` +
    `all ${db.length} rows once after scrolling`);
  await L.finish(ctx);
});
