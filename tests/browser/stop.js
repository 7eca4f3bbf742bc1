// tests/browser/stop.js URL INVGEN_PID: STOP from the page in the middle
// of a cycle (invctl start -r 50 -d 60, shown at 20/s, so a backlog
// builds up). invgen is held with SIGSTOP while STOP is pressed, so the
// page is seen in "stopping" too; then "Processing backlog (N left)"
// until every generated invoice is shown, then "Idle", at 768 px.
'use strict';
const L = require('./lib');
const { assert } = L;
const [url, pidArg] = process.argv.slice(2);
const invgen = Number(pidArg);

L.run(async (keep) => {
  assert.ok(invgen > 0, 'usage: stop.js URL INVGEN_PID');
  const { ctx, page } = await L.open(keep, url, 768, 1024);
  await L.record(page);
  L.invctl('start', '-r', '50', '-d', '60');
  await L.waitState(page, 'running', 10000);
  let p = await L.panel(page);
  assert.deepEqual([p.text, p.start, p.stop], ['Running', false, true]);
  assert.match(p.progress, /^\d{1,3} \/ 3,000$/);

  // A backlog of 40 or more, then STOP with the generator held.
  for (let i = 0; ; i++) {
    const s = JSON.parse(await L.getJSON(`${url}/api/state`));
    if (s.backlog >= 40)
      break;
    assert.ok(i < 200, 'no backlog built up');
    await L.sleep(50);
  }
  process.kill(invgen, 'SIGSTOP');
  try {
    await page.click('#stop');
    await L.waitState(page, 'stopping', 10000);
    await L.sleep(1000);
    p = await L.panel(page);
    assert.deepEqual([p.state, p.text, p.start, p.stop, p.message],
      ['stopping', 'Stopping', false, false, null]);
  } finally {
    process.kill(invgen, 'SIGCONT');
  }

  await L.waitState(page, 'draining', 15000);
  p = await L.panel(page);
  assert.match(p.text, /^Processing backlog \(\d[\d,]* left\)$/);
  assert.deepEqual([p.start, p.stop], [true, false]);
  await L.waitState(page, 'idle', 90000);
  const generated = L.dbCount();
  const db = L.dbInvoices();
  await L.waitTop(page, db[0].id, 5000);
  await L.sleep(1000);
  assert.equal(L.dbCount(), generated, 'invoices generated after STOP');
  assert.ok(generated > 40 && generated < 3000, `${generated} generated`);
  p = await L.panel(page);
  assert.deepEqual(p, { state: 'idle', text: 'Idle', conn: 'live', start: true,
    stop: false, progress: `${L.integer(generated)} / 3,000`, message: null });

  const rec = await L.recorded(page);
  const states = rec.status.map((s) => s.state).filter((s, i, a) => i === 0 || a[i - 1] !== s);
  assert.deepEqual(states, ['idle', 'running', 'stopping', 'draining', 'idle']);
  const backlog = [];
  let drainFrom = 0, drainTo = 0;
  for (const s of rec.status) {
    if (s.busy)
      continue;	// STOP's request under way: both buttons rest
    const want = {
      idle: ['Idle', true, false], running: ['Running', false, true],
      stopping: ['Stopping', false, false],
    }[s.state];
    if (want) {
      assert.deepEqual([s.text, s.start, s.stop], want, JSON.stringify(s));
      if (s.state === 'idle' && drainFrom && !drainTo)
        drainTo = s.t;
      continue;
    }
    assert.equal(s.state, 'draining', JSON.stringify(s));
    const m = /^Processing backlog \((\d[\d,]*) left\)$/.exec(s.text);
    assert.ok(m, s.text);
    assert.deepEqual([s.start, s.stop], [true, false], JSON.stringify(s));
    backlog.push(Number(m[1].replace(/,/g, '')));
    drainFrom = drainFrom || s.t;
  }
  // The backlog was shown falling while the rows kept coming.
  assert.ok(backlog[0] >= 10, `backlog figures ${backlog}`);
  assert.ok(backlog[backlog.length - 1] < backlog[0], `backlog figures ${backlog}`);
  const during = rec.added.filter((a) => a.t >= drainFrom && a.t <= drainTo).length;
  assert.ok(during >= 10, `${during} rows arrived while the backlog drained`);

  const rows = await L.scan(page);
  L.sameAsDatabase(rows, db);
  console.log(`stop: ${generated} generated before STOP; backlog shown from ` +
    `${backlog[0]} down to ${backlog[backlog.length - 1]}; ${during} rows while draining`);
  await L.finish(ctx);
});
