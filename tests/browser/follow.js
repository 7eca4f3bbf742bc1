// tests/browser/follow.js URL: auto-scroll. While rows arrive (invctl
// start -r 10 -d 8: 80 invoices at 10/s) the grid follows the newest;
// once the user scrolls down (the mouse wheel) it holds the rows being
// read still and counts the new ones on a pill; the pill takes the
// view back to the top, where it follows again.
'use strict';
const L = require('./lib');
const { assert } = L;
const url = process.argv[2];

function view() {
  const b = document.getElementById('grid-body');
  const rowH = document.getElementById('grid-probe').getBoundingClientRect().height;
  const at = (i) => {
    const r = document.querySelector(`#grid-canvas .row[data-index="${i}"]`);
    return r ? Number(r.dataset.id) : 0;
  };
  const pill = document.getElementById('pill');
  return {
    scrollTop: b.scrollTop, rowH, newest: at(0),
    count: Math.round(parseFloat(document.getElementById('grid-canvas').style.height) / rowH),
    first: at(Math.floor(b.scrollTop / rowH)),
    pill: pill.hidden ? null : pill.textContent,
  };
}

L.run(async (keep) => {
  const { ctx, page } = await L.open(keep, url, 1440, 900);
  L.invctl('start', '-r', '10', '-d', '8');
  await L.waitTopAtLeast(page, 30, 20000);
  let v = await page.evaluate(view);
  assert.equal(v.scrollTop, 0);
  assert.equal(v.pill, null);

  // The user scrolls down five rows to read.
  const box = await page.locator('#grid-body').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, 5 * v.rowH);
  await page.waitForFunction(() => document.getElementById('grid-body').scrollTop > 0);
  await L.sleep(300);
  const held = await page.evaluate(view);
  await L.sleep(1500);
  v = await page.evaluate(view);
  assert.equal(v.first, held.first, 'the rows being read moved');
  assert.ok(v.count > held.count + 5, `only ${v.count - held.count} new rows meanwhile`);
  assert.ok(v.scrollTop > held.scrollTop, 'the view was not held');
  // The pill counts what arrived since the scroll.
  await page.waitForFunction(() => !document.getElementById('pill').hidden);
  const counted = await page.evaluate(view);
  const m = /^↑ (\d+) new$/.exec(counted.pill);
  assert.ok(m, counted.pill);
  const n = Number(m[1]);
  const since = counted.count - held.count;
  assert.ok(n >= since && n <= since + 5, `pill ${n}, rows since ${since}`);

  // Back to the top with the pill; the grid follows again.
  await page.click('#pill');
  await page.waitForFunction(() => document.getElementById('grid-body').scrollTop === 0,
    null, { timeout: 5000 });
  await L.sleep(600);
  v = await page.evaluate(view);
  assert.equal(v.scrollTop, 0, 'the grid left the top after the pill');
  assert.equal(v.pill, null, 'the pill stays');
  const before = v.newest;
  await L.sleep(800);
  v = await page.evaluate(view);
  assert.ok(v.newest > before, 'no rows after the pill');
  assert.equal(v.first, v.newest, 'the newest row is not at the top');
  assert.equal(v.scrollTop, 0);

  await L.waitState(page, 'idle', 60000);
  const db = L.dbInvoices();
  assert.equal(db.length, 80);
  await L.waitTop(page, db[0].id, 10000);
  L.sameAsDatabase(await L.scan(page), db);
  console.log(`follow: held row ${held.first} in view while ${since} ` +
    `arrived; the pill said ${n}`);
  await L.finish(ctx);
});
