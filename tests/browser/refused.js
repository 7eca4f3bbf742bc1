// tests/browser/refused.js URL TOKEN: the server wants a token
// (INV_TOKEN). START without it is refused and the page says why and
// asks for it; with it, a START the state machine refuses (the state
// was changed under the page) shows the server's reason and the state
// it gave; then START with ?rate=50&duration=2 starts that cycle.
'use strict';
const L = require('./lib');
const { assert } = L;
const [url, token] = process.argv.slice(2);
const sock = process.env.REDIS_URL.replace(/^unix:\/\//, '');
const redis = (...args) => L.sh('redis-cli', ['-s', sock, ...args]);

L.run(async (keep) => {
  const { ctx, page } = await L.open(keep, url, 1024, 800, '/?rate=50&duration=2');
  assert.equal(await page.isVisible('#token-form'), false);

  await page.click('#start');
  await page.waitForSelector('#message:not([hidden])', { timeout: 10000 });
  let p = await L.panel(page);
  assert.deepEqual(p, { state: 'idle', text: 'Idle', conn: 'live', start: true,
    stop: false, progress: '—',
    message: 'START refused: a valid bearer token is required.' });
  assert.equal(await page.getAttribute('#message', 'role'), 'alert');
  assert.ok(await page.isVisible('#token-form'), 'no field for the token');
  await page.fill('#token', token);
  await page.click('#token-form button[type=submit]');
  assert.equal(await page.isVisible('#token-form'), false);
  assert.equal((await L.panel(page)).message, null);

  // The state changes under the page, which has not been told yet.
  redis('HSET', 'inv:control', 'state', 'running');
  assert.equal((await L.panel(page)).start, true);
  await page.click('#start');
  await page.waitForSelector('#message:not([hidden])', { timeout: 10000 });
  p = await L.panel(page);
  assert.deepEqual(p, { state: 'running', text: 'Running', conn: 'live', start: false,
    stop: true, progress: '—',
    message: 'START refused: cannot start: the state is running (START is ' +
      'accepted when idle or draining).' });

  // Back to idle, as everyone is told (the server sends a state only
  // when it differs from the last it sent: here, by its time); then
  // START, with the token.
  redis('HSET', 'inv:control', 'state', 'idle', 'since', '2026-12-03T00:00:00Z');
  redis('PUBLISH', 'inv:state', 'changed');
  await L.waitState(page, 'idle', 10000);
  await L.record(page);
  await page.click('#start');
  await page.waitForFunction(() => window.__rec.status.some((s) => s.state !== 'idle'),
    null, { timeout: 10000 });
  const s = JSON.parse(await L.getJSON(`${url}/api/state`));
  assert.deepEqual([s.rate, s.duration, s.target], [50, 2, 100], 'the cycle START asked for');

  await L.waitState(page, 'idle', 60000);
  const rec = await L.recorded(page);
  assert.ok(rec.status.some((r) => r.state === 'running' && r.text === 'Running'),
    'START did not show Running');
  assert.equal((await L.panel(page)).message, null);
  const db = L.dbInvoices();
  assert.equal(db.length, 100);
  await L.waitTop(page, db[0].id, 10000);
  L.sameAsDatabase(await L.scan(page), db);
  console.log('refused: 401 and 409 shown with the server\'s reasons; START with the token ran 100');
  await L.finish(ctx);
});
