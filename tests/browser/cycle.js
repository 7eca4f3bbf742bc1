// tests/browser/cycle.js URL: a whole accelerated cycle started with the
// page's START button (?rate=50&duration=4: 200 invoices in 4 s),
// watched at 1440 px: the status and the buttons in each state, the progress
// figure, the grid following the newest row, the highlight of new
// rows, then the cards against /api/stats and the grid, scrolled
// through, against the database.
'use strict';
const L = require('./lib');
const { assert } = L;
const url = process.argv[2];

L.run(async (keep) => {
  const { ctx, page } = await L.open(keep, url, 1440, 900, '/?rate=50&duration=4');
  await page.waitForSelector('#grid-empty:not([hidden])', { timeout: 10000 });
  const idle = await L.panel(page);
  assert.deepEqual(idle, { state: 'idle', text: 'Idle', conn: 'live', start: true,
    stop: false, progress: '—', message: null });
  assert.deepEqual(await L.cards(page), { count: '0', total: '0.00', vat: '0.00',
    average: '0.00' });
  assert.equal(await page.textContent('#grid-empty'),
    'No invoices yet. Press START to generate some.');

  await L.record(page);
  const t0 = await page.evaluate(() => performance.now());
  await page.click('#start');
  await L.waitState(page, 'running', 10000);

  // While it runs the grid stays at the top with the newest row in view,
  // and the count card runs ahead of the grid (5/s against 2/s, here
  // 50/s against 20/s).
  let ahead = 0;
  for (let i = 0; i < 8; i++) {
    await L.sleep(350);
    const s = await page.evaluate(() => {
      const b = document.getElementById('grid-body');
      const rows = [...b.querySelectorAll('.row')];
      const top = rows.find((r) => r.dataset.index === '0');
      const br = b.getBoundingClientRect();
      const tr = top ? top.getBoundingClientRect() : null;
      return {
        scrollTop: b.scrollTop,
        top: top ? Number(top.dataset.id) : 0,
        max: Math.max(0, ...rows.map((r) => Number(r.dataset.id))),
        inView: tr ? tr.top >= br.top - 1 && tr.top < br.bottom : false,
        count: Number(document.getElementById('stat-count').textContent.replace(/,/g, '')),
        state: document.getElementById('status').dataset.state,
      };
    });
    if (s.top === 0)
      continue;
    assert.equal(s.scrollTop, 0, 'the grid left the top by itself');
    assert.equal(s.top, s.max, 'the newest row is not on top');
    assert.ok(s.inView, 'the newest row is not in view');
    if (s.state === 'running' && s.count > s.top)
      ahead++;
  }
  assert.ok(ahead > 0, 'the count card never ran ahead of the grid');

  await L.waitState(page, 'draining', 30000);
  await L.waitState(page, 'idle', 60000);
  const db = L.dbInvoices();
  assert.equal(db.length, 200, 'invoices in the database');
  await L.waitTop(page, db[0].id, 10000);
  await page.waitForFunction(() =>
    document.getElementById('stat-count').textContent === '200', null, { timeout: 10000 });
  await L.sleep(2600);	// the last highlight is over

  // The status, the buttons and the progress in every state.
  const rec = await L.recorded(page);
  const seen = rec.status;	// from idle, before the start
  const states = seen.map((s) => s.state).filter((s, i, a) => i === 0 || a[i - 1] !== s);
  assert.deepEqual(states, ['idle', 'running', 'draining', 'idle'], 'the states in order');
  const backlog = [];
  for (const s of seen) {
    if (s.busy)
      continue;	// START's request under way: both buttons rest
    if (s.state === 'idle') {
      assert.deepEqual([s.text, s.start, s.stop], ['Idle', true, false], JSON.stringify(s));
    } else if (s.state === 'running') {
      assert.deepEqual([s.text, s.start, s.stop], ['Running', false, true], JSON.stringify(s));
      assert.match(s.progress, /^\d{1,3} \/ 200$/);
    } else if (s.state === 'draining') {
      const m = /^Processing backlog \((\d[\d,]*) left\)$/.exec(s.text);
      assert.ok(m, s.text);
      backlog.push(Number(m[1].replace(/,/g, '')));
      assert.deepEqual([s.start, s.stop], [true, false], JSON.stringify(s));
    } else {
      assert.fail(`unexpected state ${JSON.stringify(s)}`);
    }
  }
  assert.ok(Math.max(...backlog) >= 20, `backlog figures ${backlog}`);
  assert.ok(new Set(backlog).size >= 3, `the backlog figure did not move: ${backlog}`);
  // The cycle kept its pace: 200 over 4 s, not all at once.
  const span = L.sql(`SELECT extract(epoch FROM max(invoice_date) - min(invoice_date))
      FROM invoices`)[0];
  assert.ok(Number(span) >= 3.5 && Number(span) < 4.5, `200 invoices dated over ${span} s`);
  const end = await L.panel(page);
  assert.deepEqual(end, { state: 'idle', text: 'Idle', conn: 'live', start: true,
    stop: false, progress: '200 / 200', message: null });

  // Every invoice came in as a new row, highlighted; the highlight
  // went after about two seconds, and none is left.
  const added = rec.added.filter((a) => a.t > t0);
  assert.deepEqual(added.map((a) => a.id), db.map((r) => r.id).reverse(),
    'rows added in the order they were displayed');
  assert.deepEqual(added.filter((a) => !a.isNew), [], 'rows added without row-new');
  assert.ok(added.every((a) => a.index === 0), 'a new row not added on top');
  const since = new Map(added.map((a) => [a.id, a.t]));
  assert.ok(rec.unmarked.length >= 5, 'highlights that ended in view');
  for (const u of rec.unmarked) {
    const d = u.t - since.get(u.id);
    assert.ok(d >= 1500 && d <= 3500, `row ${u.id} highlighted for ${d} ms`);
  }
  assert.equal(await page.locator('.row-new').count(), 0, 'rows still highlighted');

  // The cards are /api/stats, formatted.
  const stats = L.statsOf(await L.getJSON(`${url}/api/stats`));
  assert.equal(stats.count, '200');
  assert.deepEqual(await L.cards(page), stats, 'cards against /api/stats');

  // Newest first, each invoice exactly once, as in the database.
  const rows = await L.scan(page);
  L.sameAsDatabase(rows, db);
  console.log(`cycle: 200 invoices; backlog shown up to ${Math.max(...backlog)}; ` +
    `${rec.unmarked.length} highlights ended in view; at most ${rows.maxRows} rows in the DOM`);
  await L.finish(ctx);
});
