#!/usr/bin/env node
// tests/sse-client.js: a spec-following EventSource client (the npm
// "eventsource" package) for the invserve tests.
//
//   node sse-client.js URL [--out FILE] [--clients N] [--until ID]
//       [--count N] [--timeout S] [--last-event-id ID] [--ready FILE]
//       [--reconnect-after N] [--pause MS] [--times FILE]
//
// One client (the default) appends every event to FILE as it arrives,
// one line each: "open", or TYPE <tab> LAST-EVENT-ID <tab> DATA.
// With --clients N it opens N clients and, at the end, writes one line
// per client: the invoice ids it received, comma-separated.
// It stops when every client has an invoice with id >= --until, or
// --count invoices, and exits 0; after --timeout seconds it exits 2.
// --reconnect-after N closes a client after N invoices and opens it
// again --pause ms later with Last-Event-ID set to the last id it got.
// --times FILE (one client) appends "MS ID" for every invoice: the
// wall-clock time in milliseconds at which it arrived, and its id.
'use strict';
const fs = require('fs');
const { EventSource } = require('eventsource');

const args = process.argv.slice(2);
const opt = { clients: 1, timeout: 30, pause: 200 };
let url;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => args[++i];
  switch (a) {
    case '--out': opt.out = next(); break;
    case '--clients': opt.clients = Number(next()); break;
    case '--until': opt.until = Number(next()); break;
    case '--count': opt.count = Number(next()); break;
    case '--timeout': opt.timeout = Number(next()); break;
    case '--last-event-id': opt.lastEventId = next(); break;
    case '--ready': opt.ready = next(); break;
    case '--reconnect-after': opt.reconnectAfter = Number(next()); break;
    case '--pause': opt.pause = Number(next()); break;
    case '--times': opt.times = next(); break;
    default:
      if (a.startsWith('--') || url !== undefined) {
        console.error(`sse-client: unexpected argument ${a}`);
        process.exit(64);
      }
      url = a;
  }
}
if (url === undefined) {
  console.error('usage: sse-client.js URL [options]');
  process.exit(64);
}

const single = opt.clients === 1;
const clients = [];
let opened = 0;

function record(line) {
  if (single && opt.out) fs.appendFileSync(opt.out, line + '\n');
}

function done(c) {
  if (opt.until !== undefined && c.last !== null && c.last >= opt.until) return true;
  if (opt.count !== undefined && c.ids.length >= opt.count) return true;
  return false;
}

function finish(code) {
  for (const c of clients) if (c.es) c.es.close();
  if (!single && opt.out) {
    fs.writeFileSync(opt.out, clients.map((c) => c.ids.join(',')).join('\n') + '\n');
  }
  process.exit(code);
}

function check() {
  if (clients.length === opt.clients && clients.every(done)) finish(0);
}

function open(c, lastEventId) {
  const init = {};
  if (lastEventId !== undefined && lastEventId !== null) {
    // The spec has no way to set the first Last-Event-ID: a resuming
    // page would reconnect with it, so send it as the browser would.
    init.fetch = (u, o) => fetch(u, {
      ...o, headers: { ...o.headers, 'Last-Event-ID': String(lastEventId) },
    });
  }
  const es = new EventSource(url, init);
  c.es = es;
  es.onopen = () => {
    record('open');
    if (!c.opened) {
      c.opened = true;
      if (++opened === opt.clients && opt.ready) fs.writeFileSync(opt.ready, '');
    }
  };
  es.onerror = () => record('error');
  const on = (type) => es.addEventListener(type, (e) => {
    if (c.es !== es) return;	// closed: the rest of its last chunk
    record(`${type}\t${e.lastEventId}\t${e.data}`);
    if (type !== 'invoice') return;
    const id = Number(e.lastEventId);
    if (single && opt.times) fs.appendFileSync(opt.times, `${Date.now()} ${id}\n`);
    c.ids.push(id);
    c.last = id;
    c.sinceOpen++;
    if (opt.reconnectAfter && !c.reconnected && c.sinceOpen >= opt.reconnectAfter) {
      c.reconnected = true;
      es.close();
      c.es = null;
      record('closed');
      setTimeout(() => { c.sinceOpen = 0; open(c, c.last); }, opt.pause);
      return;
    }
    check();
  });
  for (const t of ['invoice', 'state', 'stats', 'reset']) on(t);
}

for (let i = 0; i < opt.clients; i++) {
  const c = { ids: [], last: null, sinceOpen: 0, opened: false };
  clients.push(c);
  open(c, opt.lastEventId);
}
setTimeout(() => {
  console.error(`sse-client: timed out; invoices per client: ${clients.map((c) => c.ids.length).slice(0, 10).join(' ')}`);
  finish(2);
}, opt.timeout * 1000);
