/*
 * The dashboard. One EventSource on /events brings the state, the
 * statistics and the invoices as they are displayed; /api/invoices
 * brings older ones as the grid is scrolled; START and STOP post to
 * /api/start and /api/stop. No framework and no build step.
 *
 * The grid is virtual: every invoice id known to the page is kept
 * (numbers only, sorted), but only the rows near the viewport are in
 * the DOM, each placed at index * row height, and only the invoices
 * near them are kept in memory; the others are fetched again from
 * /api/invoices when they are scrolled back into view. So the page
 * stays as quick after a hundred thousand invoices as after ten.
 * The ids the page knows form one unbroken run of what was displayed
 * (the stream has no gaps, and each older page starts right below the
 * oldest id known), which is what lets a dropped row be fetched again
 * by its neighbour's id.
 *
 * XXX The canvas is index * row height tall, and browsers cap an
 * element's height (about 33 million px in Chromium): past some 400,000
 * rows on a phone (800,000 on a desktop) the oldest cannot be reached
 * by scrolling. Scaling the positions past the cap would close it.
 *
 * Data only ever reaches the page through textContent and attributes.
 */
'use strict';

(() => {
  const PAGE = 200;          // invoices asked of /api/invoices at once
  const CACHE_MAX = 1500;    // invoices kept in memory at most
  const OVERSCAN = 12;       // rows rendered beyond each edge of the view
  const NEW_MS = 2000;       // a new row stays highlighted this long
  const BURST = 8;           // more rows in one frame: a backfill or replay
  const TOP_SLACK = 4;       // px from the top that still count as the top
  const MONEY_KEYS = new Set(['subtotal', 'vat_amount', 'total_amount',
    'average_amount']);

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'), statusText: $('status-text'), conn: $('conn'),
    progress: $('progress-figure'), bar: $('bar-fill'),
    start: $('start'), stop: $('stop'),
    tokenForm: $('token-form'), token: $('token'),
    message: $('message'), announce: $('announce'),
    count: $('stat-count'), total: $('stat-total'), vat: $('stat-vat'),
    average: $('stat-average'),
    grid: $('grid'), body: $('grid-body'), canvas: $('grid-canvas'),
    probe: $('grid-probe'), empty: $('grid-empty'), foot: $('grid-foot'),
    pill: $('pill'),
  };

  /* ---- formatting ---- */

  const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const moneyFmt = new Intl.NumberFormat(undefined, {
    minimumFractionDigits: 2, maximumFractionDigits: 2,
  });
  const dateFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const DECIMAL = /^-?\d+(\.\d+)?$/;

  /*
   * Amounts stay decimal strings from the JSON text to the screen:
   * Intl.NumberFormat formats a decimal string exactly. Where the
   * browser cannot hand the reviver the source text, toFixed(2) of the
   * parsed number is still exact for every amount below 2^53 cents.
   */
  function parseJSON(text) {
    return JSON.parse(text, function (key, value, ctx) {
      if (typeof value !== 'number' || !MONEY_KEYS.has(key))
        return value;
      if (ctx && typeof ctx.source === 'string' && DECIMAL.test(ctx.source))
        return ctx.source;
      return value.toFixed(2);
    });
  }

  function money(s) {
    if (typeof s === 'number')
      s = s.toFixed(2);
    if (typeof s !== 'string' || !DECIMAL.test(s))
      return '—';
    return moneyFmt.format(s);
  }

  function integer(n) {
    return Number.isFinite(n) ? intFmt.format(n) : '—';
  }

  function localTime(iso) {
    // Date parses milliseconds; the microseconds would only confuse it.
    const d = new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
    return Number.isNaN(d.getTime()) ? String(iso) : dateFmt.format(d);
  }

  /* ---- status, buttons, messages ---- */

  const STATUS = {
    idle: 'Idle', running: 'Running', stopping: 'Stopping',
    draining: 'Processing backlog',
  };
  let state = null;          // the last state JSON
  let stateSeq = 0;          // bumped by every state from the stream
  let conn = 'connecting';   // connecting, live, reconnecting
  let busy = null;           // 'start' or 'stop' while its POST runs
  let token = sessionStorage.getItem('inv-token') || '';
  let messageTimer = 0;

  function announce(text) {
    el.announce.textContent = '';
    // A change the screen reader sees even when the text repeats.
    setTimeout(() => { el.announce.textContent = text; }, 50);
  }

  function statusText(s) {
    if (s.state === 'draining')
      return `Processing backlog (${integer(s.backlog)} left)`;
    return STATUS[s.state] || s.state;
  }

  function applyState(s, fromStream) {
    if (!s || typeof s.state !== 'string')
      return;
    const before = state ? state.state : null;
    state = s;
    if (fromStream)
      stateSeq++;
    el.status.dataset.state = s.state;
    el.statusText.textContent = statusText(s);
    if (s.target > 0) {
      el.progress.textContent = `${integer(s.generated)} / ${integer(s.target)}`;
      el.bar.style.width = `${Math.min(100, 100 * s.generated / s.target)}%`;
    } else {
      el.progress.textContent = '—';
      el.bar.style.width = '0';
    }
    if (before !== s.state) {
      announce(`Status: ${STATUS[s.state] || s.state}`);
      document.title = `${STATUS[s.state] || s.state} · Invoice stream`;
    }
    updateButtons();
  }

  function updateButtons() {
    const st = conn === 'live' && state ? state.state : null;
    el.start.disabled = busy !== null || !(st === 'idle' || st === 'draining');
    el.stop.disabled = busy !== null || st !== 'running';
    el.start.setAttribute('aria-busy', String(busy === 'start'));
    el.stop.setAttribute('aria-busy', String(busy === 'stop'));
  }

  function setConn(c) {
    if (c === conn)
      return;
    const was = conn;
    conn = c;
    el.conn.dataset.conn = c;
    el.conn.textContent = c === 'live' ? 'Live' :
      c === 'reconnecting' ? 'Reconnecting…' : 'Connecting…';
    if (c === 'reconnecting')
      announce('Connection lost; reconnecting');
    else if (c === 'live' && was === 'reconnecting')
      announce('Connected again');
    if (!state)
      el.statusText.textContent = c === 'reconnecting' ? 'Reconnecting…' :
        'Connecting…';
    updateButtons();
  }

  function showMessage(text) {
    el.message.textContent = text;
    el.message.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(hideMessage, 8000);
  }

  function hideMessage() {
    clearTimeout(messageTimer);
    el.message.hidden = true;
    el.message.textContent = '';
  }

  /*
   * ?rate=N&duration=S in the page's address set START's cycle; without
   * them the server's default (5/s for 300 s) holds.
   */
  function cycleArgs() {
    const q = new URLSearchParams(location.search), args = {};
    const rate = Number(q.get('rate')), duration = Number(q.get('duration'));
    if (q.has('rate') && rate > 0)
      args.rate = rate;
    if (q.has('duration') && Number.isInteger(duration) && duration > 0)
      args.duration = duration;
    return Object.keys(args).length ? JSON.stringify(args) : null;
  }

  async function control(which) {
    const name = which.toUpperCase();
    const headers = {};
    const body = which === 'start' ? cycleArgs() : null;
    const seq = stateSeq;

    if (busy)
      return;
    busy = which;
    updateButtons();
    if (body)
      headers['Content-Type'] = 'application/json';
    if (token)
      headers.Authorization = `Bearer ${token}`;
    try {
      const r = await fetch(`api/${which}`, {
        method: 'POST', headers, body, cache: 'no-store',
        credentials: 'same-origin',
      });
      let j = null;
      try { j = await r.json(); } catch (e) { /* not JSON */ }
      const why = j && j.error ? j.error : `${r.status} ${r.statusText}`;
      if (r.ok) {
        hideMessage();
        el.tokenForm.hidden = true;
      } else if (r.status === 401) {
        showMessage(`${name} refused: ${why}.`);
        el.tokenForm.hidden = false;
        el.token.focus();
      } else {
        showMessage(`${name} refused: ${why}.`);
      }
      // The answer's state, unless the stream has told a newer one.
      const s = r.ok ? j : j && j.state;
      if (s && stateSeq === seq)
        applyState(s, false);
    } catch (e) {
      showMessage(`${name} failed: the server cannot be reached.`);
    } finally {
      busy = null;
      updateButtons();
    }
  }

  el.start.addEventListener('click', () => control('start'));
  el.stop.addEventListener('click', () => control('stop'));
  el.tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = el.token.value.trim();
    sessionStorage.setItem('inv-token', token);
    el.tokenForm.hidden = true;
    hideMessage();
  });

  /* ---- statistics ---- */

  // A long figure in a narrow card gets a smaller font, not an ellipsis.
  function fit(node) {
    node.style.fontSize = '';
    let size = parseFloat(getComputedStyle(node).fontSize);
    while (node.scrollWidth > node.clientWidth && size > 11) {
      size -= 1;
      node.style.fontSize = `${size}px`;
    }
  }

  function fitCards() {
    for (const node of [el.count, el.total, el.vat, el.average])
      fit(node);
  }

  function applyStats(s) {
    const set = (node, text, raw) => {
      const grew = text.length !== node.textContent.length;
      node.textContent = text;
      node.dataset.value = raw;
      if (grew)
        fit(node);
    };
    set(el.count, integer(s.count), String(s.count));
    set(el.total, money(s.total_amount), s.total_amount);
    set(el.vat, money(s.vat_amount), s.vat_amount);
    set(el.average, money(s.average_amount), s.average_amount);
  }

  /* ---- the grid's data ---- */

  const asc = [];            // every id known, ascending (newest last)
  const cache = new Map();   // id -> invoice, near the view only
  const fresh = new Map();   // id -> time it arrived live (highlight)
  let exhausted = false;     // nothing older than asc[0] was displayed
  let olderLoading = false;
  let olderRetry = 0;
  let gapLoading = false;
  let openedAt = 0;          // when the stream last opened

  const count = () => asc.length;
  const idAt = (i) => asc[asc.length - 1 - i];

  // The first position in asc whose id is >= id.
  function lowerBound(id) {
    let lo = 0, hi = asc.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (asc[mid] < id) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function indexOf(id) {
    const p = lowerBound(id);
    return asc[p] === id ? asc.length - 1 - p : -1;
  }

  // Add one invoice; false when its id was known already.
  function insert(inv) {
    const id = inv.id, n = asc.length;
    if (n === 0 || id > asc[n - 1]) {
      asc.push(id);
    } else {
      const p = lowerBound(id);
      if (asc[p] === id) {
        if (!cache.has(id))
          cache.set(id, inv);
        return false;
      }
      asc.splice(p, 0, id);
    }
    cache.set(id, inv);
    return true;
  }

  // Invoices older than every known one, newest first, in one go.
  function prependOlder(list) {
    const older = [];
    for (const inv of list) {
      if (asc.length && inv.id >= asc[0]) {
        insert(inv);
        continue;
      }
      if (older.length && inv.id >= older[older.length - 1])
        continue;
      older.push(inv.id);
      cache.set(inv.id, inv);
    }
    older.reverse();
    asc.splice(0, 0, ...older);
  }

  function validInvoice(o) {
    return o && Number.isSafeInteger(o.id) && o.id > 0 &&
      typeof o.invoice_number === 'string';
  }

  function clearGrid() {
    asc.length = 0;
    cache.clear();
    fresh.clear();
    for (const node of rowsById.values())
      node.remove();
    rowsById.clear();
    exhausted = false;
    el.body.scrollTop = 0;
    setFollow(true);
  }

  async function getPage(before, limit) {
    const q = before ? `before=${before}&limit=${limit}` : `limit=${limit}`;
    const r = await fetch(`api/invoices?${q}`, { cache: 'no-store' });
    if (!r.ok) {
      let why = `${r.status} ${r.statusText}`;
      try { why = (await r.json()).error || why; } catch (e) { /* */ }
      throw new Error(why);
    }
    const list = parseJSON(await r.text());
    if (!Array.isArray(list))
      throw new Error('unexpected answer');
    return list.filter(validInvoice);
  }

  // The next page below the oldest known invoice (infinite scroll).
  async function loadOlder() {
    if (olderLoading || exhausted || olderRetry)
      return;
    olderLoading = true;
    const generation = resets;
    const before = count() ? asc[0] : 0;
    updateFoot();
    try {
      const list = await getPage(before, PAGE);
      if (generation !== resets)
        return;
      prependOlder(list);
      if (list.length < PAGE)
        exhausted = true;
      footErr = '';
    } catch (e) {
      footError(`Could not load older invoices: ${e.message}. Trying again…`);
      olderRetry = setTimeout(() => { olderRetry = 0; schedule(); }, 3000);
    } finally {
      olderLoading = false;
      schedule();
    }
  }

  /*
   * Rows in view whose invoices were dropped from memory: fetch them
   * again, starting right below the newest one missing's neighbour.
   */
  async function loadGap(first) {
    if (gapLoading)
      return;
    gapLoading = true;
    const generation = resets;
    const before = first === 0 ? idAt(0) + 1 : idAt(first - 1);
    try {
      const list = await getPage(before, PAGE);
      if (generation !== resets)
        return;
      for (const inv of list)
        insert(inv);
      footErr = '';
      // A known id below `before` that the page skipped is no longer in
      // the database: say so rather than ask again and again. (By id,
      // not index: rows that arrived meanwhile moved the indexes.)
      const hi = lowerBound(before);
      const lo = list.length < PAGE ? Math.max(0, hi - PAGE) :
        lowerBound(list[list.length - 1].id);
      for (let p = lo; p < hi; p++)
        if (!cache.has(asc[p]))
          cache.set(asc[p], { id: asc[p], missing: true });
    } catch (e) {
      footError(`Could not load invoices: ${e.message}. Trying again…`);
      await new Promise((res) => setTimeout(res, 3000));
    } finally {
      gapLoading = false;
      schedule();
    }
  }

  // Keep only the invoices within reach of the rows in view.
  function evict(first, last) {
    if (cache.size <= CACHE_MAX + 100)
      return;
    const keep = Math.max(0, (CACHE_MAX - (last - first)) >> 1);
    for (const id of cache.keys()) {
      const i = indexOf(id);
      if (i < 0 || i < first - keep || i >= last + keep)
        cache.delete(id);
    }
  }

  /* ---- the grid's rows ---- */

  const CELLS = ['num', 'date', 'seller', 'buyer', 'sub', 'vat', 'tot'];
  const rowsById = new Map();  // id -> row element in the DOM
  let rowH = 40;
  let follow = true;           // at the top: newest rows stay in view
  let newCount = 0;            // rows that arrived while not following
  let resets = 0;
  let jumping = false;         // the pill's smooth scroll to the top

  function makeRow(id) {
    const row = document.createElement('div');
    row.className = 'row';
    row.setAttribute('role', 'row');
    row.dataset.id = String(id);
    for (const k of CELLS) {
      const c = document.createElement(k === 'date' ? 'time' : 'span');
      c.className = `c c-${k}`;
      c.setAttribute('role', 'cell');
      row.appendChild(c);
    }
    return row;
  }

  function fillRow(row, inv) {
    const c = row.children;
    if (!inv) {
      row.classList.add('row-loading');
      return;
    }
    row.classList.remove('row-loading');
    row.filled = true;
    if (inv.missing) {
      row.classList.add('row-missing');
      c[0].textContent = `#${inv.id}`;
      c[2].textContent = 'no longer in the database';
      return;
    }
    c[0].textContent = inv.invoice_number;
    c[1].textContent = localTime(inv.invoice_date);
    c[1].dateTime = inv.invoice_date;
    c[1].title = inv.invoice_date;
    c[2].textContent = inv.seller_name;
    c[2].title = inv.seller_name;
    c[3].textContent = inv.buyer_name;
    c[3].title = inv.buyer_name;
    c[4].textContent = money(inv.subtotal);
    c[5].textContent = money(inv.vat_amount);
    c[6].textContent = money(inv.total_amount);
  }

  function measure() {
    const h = el.probe.getBoundingClientRect().height;
    if (h > 0 && Math.abs(h - rowH) > 0.01) {
      const first = Math.floor(el.body.scrollTop / rowH);
      rowH = h;
      el.canvas.style.height = `${count() * rowH}px`;
      if (!follow)
        el.body.scrollTop = first * rowH;
      for (const row of rowsById.values())
        row.pos = -1;
      still();
    }
  }

  // Rows move to their new places at once this frame, not slide there.
  let stillFrames = 0;
  function still() {
    el.body.classList.add('still');
    const mine = ++stillFrames;
    requestAnimationFrame(() => requestAnimationFrame(() => {
      if (mine === stillFrames)
        el.body.classList.remove('still');
    }));
  }

  let scheduled = false;

  function schedule() {
    if (scheduled)
      return;
    scheduled = true;
    requestAnimationFrame(frame);
    // Frames stop in a hidden tab; the data should not pile up there.
    setTimeout(frame, 250);
  }

  function frame() {
    if (!scheduled)
      return;
    scheduled = false;
    flush();
    render();
  }

  /* ---- invoices from the stream ---- */

  let pending = [];
  let lastFlush = -1e9;

  function flush() {
    if (pending.length === 0)
      return;
    const batch = pending;
    pending = [];
    const burst = batch.length > BURST;
    const anchor = follow ? null : anchorOf();
    const now = performance.now();
    let added = 0;
    for (const inv of batch) {
      if (!insert(inv))
        continue;
      added++;
      if (!burst)
        fresh.set(inv.id, now);
    }
    if (added === 0)
      return;
    // Rows slide down for a new one at the display rate (2/s); faster
    // than that, or a burst, they would never come to rest: they jump.
    if (burst || now - lastFlush < 400)
      still();
    lastFlush = now;
    el.canvas.style.height = `${count() * rowH}px`;
    if (anchor) {
      // Keep the rows being read where they are, and count the news.
      const i = indexOf(anchor.id);
      if (i >= 0)
        el.body.scrollTop = i * rowH + anchor.offset;
      newCount += added;
    }
  }

  function anchorOf() {
    const top = el.body.scrollTop, i = Math.floor(top / rowH);
    if (i >= count())
      return null;
    return { id: idAt(i), offset: top - i * rowH };
  }

  function render() {
    measure();
    const n = count();
    const top = el.body.scrollTop, h = el.body.clientHeight;
    el.canvas.style.height = `${n * rowH}px`;
    const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
    const last = Math.min(n, Math.ceil((top + h) / rowH) + OVERSCAN);
    const now = performance.now();
    let missing = -1, next = null;

    // From the bottom up, so a new row goes in before its neighbour
    // below and the DOM order stays the reading order.
    const want = new Set();
    for (let i = last - 1; i >= first; i--) {
      const id = idAt(i);
      const inv = cache.get(id);
      let row = rowsById.get(id);
      want.add(id);
      if (!row) {
        row = makeRow(id);
        row.pos = -1;
        fillRow(row, inv);
        const t = fresh.get(id);
        if (t !== undefined && now - t < NEW_MS) {
          row.classList.add('row-new');
          setTimeout(() => row.classList.remove('row-new'), NEW_MS - (now - t));
        }
        el.canvas.insertBefore(row, next);
        rowsById.set(id, row);
      } else if (!row.filled && inv) {
        fillRow(row, inv);
      }
      if (!inv)
        missing = i;	// the loop runs upwards: the newest one wins
      if (row.pos !== i) {
        row.pos = i;
        row.style.transform = `translateY(${i * rowH}px)`;
        row.dataset.index = String(i);
        row.setAttribute('aria-rowindex', String(i + 2));
      }
      next = row;
    }
    for (const [id, row] of rowsById) {
      if (!want.has(id)) {
        row.remove();
        rowsById.delete(id);
      }
    }
    if (missing >= 0)
      loadGap(missing);
    for (const [id, t] of fresh)
      if (now - t >= NEW_MS)
        fresh.delete(id);
    evict(first, last);

    // Infinite scroll: fetch older ones before the user reaches the end.
    const nearEnd = last >= n - OVERSCAN;
    const settled = n > 0 || (conn === 'live' && performance.now() - openedAt > 800);
    if (nearEnd && settled && !exhausted)
      loadOlder();
    else if (nearEnd && n === 0 && !exhausted && conn === 'live')
      setTimeout(schedule, 900);

    el.grid.setAttribute('aria-rowcount', exhausted ? String(n + 1) : '-1');
    el.empty.hidden = !(n === 0 && exhausted);
    updateFoot();
    updatePill();
  }

  let footErr = '';

  function footError(text) {
    footErr = text;
    updateFoot();
  }

  function updateFoot() {
    const n = count();
    let text = '', kind = '';
    if (footErr) {
      text = footErr;
      kind = 'error';
    } else if (olderLoading || (!exhausted && n > 0)) {
      text = 'Loading older invoices…';
    } else if (exhausted && n > 0) {
      text = n === 1 ? 'The only invoice so far.' :
        `All ${integer(n)} invoices shown.`;
    }
    if (el.foot.textContent !== text)
      el.foot.textContent = text;
    el.foot.dataset.kind = kind;
  }

  function updatePill() {
    if (follow || newCount === 0) {
      el.pill.hidden = true;
      return;
    }
    el.pill.hidden = false;
    el.pill.textContent = `↑ ${integer(newCount)} new`;
  }

  function setFollow(f) {
    follow = f;
    el.body.classList.toggle('follow', f);
    if (f)
      newCount = 0;
    updatePill();
  }

  /*
   * At the top the grid follows the newest rows; scrolled down it holds
   * still (flush() keeps the rows being read in place) and counts the
   * new ones on the pill. Rows keep one height, so the compensation
   * never brings the view back to the top by itself.
   */
  el.body.addEventListener('scroll', () => {
    const atTop = el.body.scrollTop <= TOP_SLACK;
    if (jumping && atTop)
      jumping = false;
    if (!jumping)
      setFollow(atTop);
    schedule();
  }, { passive: true });

  function userScrolls() {
    jumping = false;
  }
  for (const type of ['wheel', 'touchstart', 'keydown', 'pointerdown'])
    el.body.addEventListener(type, userScrolls, { passive: true });

  el.pill.addEventListener('click', () => {
    // Follow at once, so the rows that arrive meanwhile do not hold
    // the view where it is and cut the smooth scroll short.
    setFollow(true);
    jumping = true;
    el.body.scrollTo({ top: 0, behavior: 'smooth' });
    el.body.focus({ preventScroll: true });
    setTimeout(() => {
      if (jumping) {
        jumping = false;
        setFollow(el.body.scrollTop <= TOP_SLACK);
      }
    }, 2000);
  });

  window.addEventListener('resize', () => {
    fitCards();
    schedule();
  });

  /* ---- the stream ---- */

  let es = null;
  let retryMs = 1000;
  let retryTimer = 0;

  function connect() {
    // After a failure the stream is opened anew from the last id shown.
    const last = count() ? idAt(0) : 0;
    es = new EventSource(last ? `events?last_event_id=${last}` : 'events');
    es.addEventListener('open', () => {
      openedAt = performance.now();
      retryMs = 1000;
      setConn('live');
      schedule();
    });
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) {
        // Refused outright (a 503, say): the browser gives up; we do not.
        es.close();
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 15000);
      }
      setConn('reconnecting');
    });
    es.addEventListener('state', (e) => {
      try { applyState(JSON.parse(e.data), true); } catch (err) { /* */ }
    });
    es.addEventListener('stats', (e) => {
      try { applyStats(parseJSON(e.data)); } catch (err) { /* */ }
    });
    es.addEventListener('invoice', (e) => {
      let inv;
      try { inv = parseJSON(e.data); } catch (err) { return; }
      if (!validInvoice(inv))
        return;
      pending.push(inv);
      schedule();
    });
    es.addEventListener('reset', () => {
      // The server could not replay what was missed: start afresh.
      resets++;
      pending = [];
      clearGrid();
      schedule();
    });
  }

  setFollow(true);
  updateButtons();
  connect();
  schedule();
})();
