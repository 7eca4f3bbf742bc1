// tests/browser/pages.js URL: three pages open at once, at 360, 768 and
// 1440 px, watch one cycle (invctl start -r 50 -d 2: 100 invoices).
// Each gets every invoice live, in order, and the three grids,
// scrolled through, are the same and are the database.
'use strict';
const L = require('./lib');
const { assert } = L;
const url = process.argv[2];
const widths = [360, 768, 1440];

L.run(async (keep) => {
  const ctx = keep(await L.launch());
  const pages = [await L.firstPage(ctx), await ctx.newPage(), await ctx.newPage()];
  for (let i = 0; i < pages.length; i++) {
    await pages[i].setViewportSize({ width: widths[i], height: 900 });
    await pages[i].goto(`${url}/`);
  }
  for (const page of pages) {
    await L.waitState(page, 'idle', 15000);
    await L.record(page);
  }
  L.invctl('start', '-r', '50', '-d', '2');
  for (const page of pages)
    await L.waitState(page, 'running', 10000);
  for (const page of pages)
    await L.waitState(page, 'idle', 60000);
  const db = L.dbInvoices();
  assert.equal(db.length, 100);
  const grids = [];
  for (const [i, page] of pages.entries()) {
    await L.waitTop(page, db[0].id, 10000);
    const rec = await L.recorded(page);
    assert.deepEqual(rec.added.map((a) => a.id), db.map((r) => r.id).reverse(),
      `page ${i}: rows as they arrived`);
    grids.push(await L.scan(page));
  }
  assert.deepEqual([...grids[1]], [...grids[0]], 'pages 0 and 1');
  assert.deepEqual([...grids[2]], [...grids[0]], 'pages 0 and 2');
  L.sameAsDatabase(grids[0], db);
  for (const page of pages)
    assert.deepEqual(await L.cards(page), L.statsOf(await L.getJSON(`${url}/api/stats`)));
  console.log(`pages: 3 pages, the same ${db.length} rows in each`);
  await L.finish(ctx);
});
