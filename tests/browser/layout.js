// tests/browser/layout.js URL SHOTS_DIR: after a cycle (invctl start -r
// 50 -d 3: 150 invoices), the page at widths from 360 to 1920 px, light
// and dark: no two of the control panel, the four cards, the grid
// header and the rows in view overlap (measured from their rectangles),
// the sections come in that order, nothing sticks out sideways, and no
// figure, date, invoice number, label or button text is cut short.
// Screenshots at 360, 768 and 1440 px (and one while the backlog
// drains) go to SHOTS_DIR, for people to look at.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib');
const { assert } = L;
const [url, shots] = process.argv.slice(2);

const sizes = [[360, 740], [360, 560], [414, 896], [600, 960], [768, 1024],
  [1024, 768], [1280, 800], [1440, 900], [1920, 1080]];
const pictured = new Set([360, 768, 1440]);

function measure() {
  const box = (name, e) => {
    const b = e.getBoundingClientRect();
    return { name, left: b.left, top: b.top, right: b.right, bottom: b.bottom };
  };
  const shown = (e) => getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0;
  const body = document.getElementById('grid-body');
  const view = body.getBoundingClientRect();
  const boxes = [box('control panel', document.getElementById('panel'))];
  for (const c of document.querySelectorAll('.card'))
    boxes.push(box(`card ${c.id}`, c));
  boxes.push(box('grid header', document.getElementById('grid-head')));
  const rows = [];
  for (const r of body.querySelectorAll('.row')) {
    const b = box(`row ${r.dataset.index}`, r);
    // What of the row is in view, inside the grid's scrolling area.
    b.top = Math.max(b.top, view.top);
    b.bottom = Math.min(b.bottom, view.bottom);
    if (b.bottom - b.top > 1)
      rows.push(b);
  }
  const cut = [];
  const check = (what, e) => {
    if (shown(e) && e.scrollWidth > e.clientWidth + 0.5)
      cut.push(`${what}: "${e.textContent}" (${e.scrollWidth} > ${e.clientWidth})`);
  };
  for (const id of ['stat-count', 'stat-total', 'stat-vat', 'stat-average',
    'status-text', 'progress-figure', 'start', 'stop'])
    check(id, document.getElementById(id));
  for (const c of document.querySelectorAll('.card h2'))
    check('card title', c);
  for (const c of document.querySelectorAll('#grid-head .c'))
    check(`header ${c.className}`, c);
  for (const r of body.querySelectorAll('.row')) {
    const b = r.getBoundingClientRect();
    if (b.bottom <= view.top || b.top >= view.bottom)
      continue;
    for (const k of ['num', 'date', 'sub', 'vat', 'tot'])
      check(`row ${r.dataset.index} ${k}`, r.querySelector(`.c-${k}`));
  }
  return {
    boxes, rows, cut, width: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    gridTop: view.top,
  };
}

function overlap(a, b) {
  const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
  const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
  return w > 0.5 && h > 0.5;
}

L.run(async (keep) => {
  fs.mkdirSync(shots, { recursive: true });
  const { ctx, page } = await L.open(keep, url, 1440, 900);
  L.invctl('start', '-r', '50', '-d', '3');
  await L.waitState(page, 'draining', 30000);
  await L.sleep(800);
  const draining = path.join(shots, 'dashboard-1440-draining.png');
  await page.screenshot({ path: draining });
  await L.waitState(page, 'idle', 60000);
  const db = L.dbInvoices();
  await L.waitTop(page, db[0].id, 10000);
  await L.sleep(2200);	// no row highlighted in the pictures

  const files = [draining];
  let checked = 0;
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const [width, height] of sizes) {
      const what = `${width}x${height} ${scheme}`;
      await page.setViewportSize({ width, height });
      await page.evaluate(() => new Promise((res) =>
        requestAnimationFrame(() => requestAnimationFrame(res))));
      const m = await page.evaluate(measure);
      assert.ok(m.scrollWidth <= m.width, `${what}: the page is ${m.scrollWidth} px wide`);
      assert.ok(m.rows.length >= 2, `${what}: ${m.rows.length} rows in view`);
      assert.deepEqual(m.cut, [], `${what}: text cut short`);
      const all = [...m.boxes, ...m.rows];
      for (const b of all) {
        assert.ok(b.left >= -0.5 && b.right <= m.width + 0.5,
          `${what}: ${b.name} sticks out (${b.left}..${b.right})`);
        assert.ok(b.bottom > b.top, `${what}: ${b.name} has no height`);
      }
      for (let i = 0; i < all.length; i++)
        for (let j = i + 1; j < all.length; j++)
          assert.ok(!overlap(all[i], all[j]),
            `${what}: ${all[i].name} and ${all[j].name} overlap: ` +
            `${JSON.stringify(all[i])} ${JSON.stringify(all[j])}`);
      // Panel, then the cards, then the grid header, then the rows.
      const [panel, ...rest] = m.boxes;
      const head = rest.pop();
      for (const c of rest) {
        assert.ok(c.top >= panel.bottom - 0.5, `${what}: ${c.name} above the panel's end`);
        assert.ok(head.top >= c.bottom - 0.5, `${what}: the grid header above ${c.name}'s end`);
      }
      for (const r of m.rows)
        assert.ok(r.top >= head.bottom - 0.5, `${what}: ${r.name} above the grid header`);
      checked++;
      if (pictured.has(width) && height !== 560) {
        const file = path.join(shots, `dashboard-${width}-${scheme}.png`);
        await page.screenshot({ path: file });
        files.push(file);
      }
    }
  }
  console.log(`layout: ${checked} sizes without overlap; screenshots in ${shots}: ` +
    files.map((f) => path.basename(f)).join(' '));
  await L.finish(ctx);
});
