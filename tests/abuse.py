#!/usr/bin/env python3
# tests/abuse.py PORT: bad HTTP of every kind against invserve on
# 127.0.0.1:PORT, bounded in count and time (a few seconds each, a
# timeout on every socket). Prints one line per kind of abuse: its name
# and what the server answered, as counts of status codes ("200x1000")
# or one code per request, so a test compares the whole output with
# what it expects. A body that holds "secret" (the file outside --www
# that tests/badinput.bats plants) is printed as "LEAK".
import asyncio
import random
import re
import resource
import sys

PORT = int(sys.argv[1])
TIMEOUT = 30


async def exchange(raw, chunks=None, pause=0.0, close=True):
    """Send raw (then each of chunks, pause s apart); the status code
    and body, or 'closed' when the server hung up without answering."""
    r, w = await asyncio.open_connection('127.0.0.1', PORT)
    try:
        w.write(raw)
        await w.drain()
        for c in chunks or ():
            await asyncio.sleep(pause)
            w.write(c)
            await w.drain()
        head = await asyncio.wait_for(r.readuntil(b'\r\n\r\n'), TIMEOUT)
        code = head.split(b' ', 2)[1].decode()
        length = 0
        for line in head.split(b'\r\n'):
            if line.lower().startswith(b'content-length:'):
                length = int(line.split(b':')[1])
        body = await asyncio.wait_for(r.readexactly(length), TIMEOUT)
        return code, body
    except (asyncio.IncompleteReadError, ConnectionError):
        return 'closed', b''
    finally:
        w.close()


async def answers(raw):
    """Every answer to raw, read to the end: the status codes."""
    r, w = await asyncio.open_connection('127.0.0.1', PORT)
    try:
        w.write(raw)
        await w.drain()
        data = await asyncio.wait_for(r.read(), TIMEOUT)
    except (asyncio.TimeoutError, ConnectionError):
        data = b''
    finally:
        w.close()
    return ','.join(c.decode() for c in
                    re.findall(rb'HTTP/1\.1 (\d{3}) ', data)) or 'none'


def tally(results):
    counts = {}
    for code, body in results:
        if b'secret' in body:
            code = 'LEAK'
        counts[code] = counts.get(code, 0) + 1
    return ' '.join('%sx%d' % (k, counts[k]) for k in sorted(counts))


def get(path, extra=b''):
    return (b'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s'
            b'Connection: close\r\n\r\n' % (path, PORT, extra))


async def slowloris(n, rounds, pause):
    """n connections that each dribble a header every pause s, rounds
    times, before they end the request; the server must answer all."""
    head = b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n'
    chunks = [b'X-Slow-%d: %s\r\n' % (i, b'x' * 20) for i in range(rounds)]
    chunks.append(b'\r\n')
    sem = asyncio.Semaphore(n)

    async def one():
        async with sem:
            return await exchange(head, chunks, pause)
    return tally(await asyncio.gather(*(one() for _ in range(n))))


async def dribble(r, w, pause, most):
    """Begin a request and send a header of it every pause s for up to
    most s: the status code that comes, 'closed' or 'open'."""
    w.write(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    for i in range(int(most / pause)):
        try:
            b = await asyncio.wait_for(r.read(4096), pause)
            return b.split(b' ', 2)[1].decode() if b else 'closed'
        except asyncio.TimeoutError:
            w.write(b'X-Slow-%d: x\r\n' % i)
            await w.drain()
    return 'open'


async def answered(r, w):
    """A whole request and its whole answer, the connection kept alive:
    the status code."""
    w.write(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    head = await asyncio.wait_for(r.readuntil(b'\r\n\r\n'), TIMEOUT)
    length = int(re.search(rb'(?i)content-length: *(\d+)', head)[1])
    await asyncio.wait_for(r.readexactly(length), TIMEOUT)
    return head.split(b' ', 2)[1].decode()


def timed(results, lo, hi):
    """The tally of (code, seconds) results, and whether each came
    within lo-hi s."""
    times = [t for _, t in results]
    if lo <= min(times) and max(times) <= hi:
        when = 'within %d-%d s' % (lo, hi)
    else:
        when = 'after %.1f-%.1f s' % (min(times), max(times))
    return '%s %s' % (tally((c, b'') for c, _ in results), when)


async def overstay(n, pause, most):
    """n connections that dribble a header every pause s for up to most
    s: the server must cut each off (invserve: 408 after 15 s). Prints
    the answers and the range of seconds they came after."""
    async def one():
        t0 = asyncio.get_running_loop().time()
        r, w = await asyncio.open_connection('127.0.0.1', PORT)
        try:
            code = await dribble(r, w, pause, most)
        except ConnectionError:
            code = 'closed'
        finally:
            w.close()
        return code, asyncio.get_running_loop().time() - t0
    return timed(await asyncio.gather(*(one() for _ in range(n))), 14, 25)


async def keepalive_overstay(n, pause, most):
    """n keep-alive connections that each get one answer, then dribble
    a second request as overstay() does: the server must cut each off
    (invserve: 408 15 s after the second request began). Prints the
    answers and the range of seconds from the second request's start."""
    async def one():
        r, w = await asyncio.open_connection('127.0.0.1', PORT)
        first, t0 = 'none', None
        try:
            first = await answered(r, w)
            t0 = asyncio.get_running_loop().time()
            code = await dribble(r, w, pause, most)
        except (asyncio.IncompleteReadError, ConnectionError):
            code = 'closed'
        finally:
            w.close()
        t = asyncio.get_running_loop().time() - t0 if t0 else -1
        return '%s,%s' % (first, code), t
    return timed(await asyncio.gather(*(one() for _ in range(n))), 14, 25)


async def keepalive_idle(n):
    """n keep-alive connections that each get one answer and then send
    nothing: the server must close each without a word (evhttp's idle
    timeout, 10 s). Prints what came after the answer ('quiet' for
    nothing at all) and the range of seconds until the close."""
    async def one():
        r, w = await asyncio.open_connection('127.0.0.1', PORT)
        try:
            await answered(r, w)
            t0 = asyncio.get_running_loop().time()
            b = await asyncio.wait_for(r.read(), TIMEOUT)
            code = b.split(b' ', 2)[1].decode() if b else 'quiet'
        except asyncio.TimeoutError:
            return 'open', 0
        except (asyncio.IncompleteReadError, ConnectionError):
            return 'reset', 0
        finally:
            w.close()
        return code, asyncio.get_running_loop().time() - t0
    return timed(await asyncio.gather(*(one() for _ in range(n))), 8, 20)


async def sends_on(n):
    """n connections whose head passes 16 KiB, and that send on after
    the answer: the server must answer 431 and let each go within
    seconds however long it goes on (invserve: 5 s). Prints the answer,
    what became of the connection and the range of seconds from the
    answer to the close."""
    async def one():
        r, w = await asyncio.open_connection('127.0.0.1', PORT)
        code, end, t0, t = 'none', 'open', None, -1
        try:
            w.write(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                    b'X-Big: ' + b'a' * 20000)
            head = await asyncio.wait_for(r.readuntil(b'\r\n\r\n'), TIMEOUT)
            code = head.split(b' ', 2)[1].decode()
            t0 = asyncio.get_running_loop().time()
            # The answer ends with the server's end of file, so the
            # close shows as a write refused (a reset).
            for i in range(60):
                w.write(b'a' * 1024)
                await w.drain()
                await asyncio.sleep(0.5)
        except (asyncio.IncompleteReadError, ConnectionError):
            end = 'closed'
        finally:
            w.close()
        if end == 'closed' and t0 is not None:
            t = asyncio.get_running_loop().time() - t0
        return '%s,%s' % (code, end), t
    return timed(await asyncio.gather(*(one() for _ in range(n))), 4, 12)


async def pooled(reqs, width):
    sem = asyncio.Semaphore(width)

    async def one(raw):
        async with sem:
            return await exchange(raw)
    return await asyncio.gather(*(one(r) for r in reqs))


def garbage(n):
    """n requests that are not HTTP: random bytes of every value but
    CR and LF, then an empty line (the same ones every run)."""
    rng = random.Random(7)
    alphabet = bytes(b for b in range(256) if b not in (10, 13))
    return [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 200))) +
            b'\r\n\r\n' for _ in range(n)]


TRAVERSAL = [b'/../outside', b'/..', b'/./../outside', b'/%2e%2e/outside',
             b'/%2E%2E%2Foutside', b'/.%2e/outside', b'/sub/.%2E/.%2E/outside',
             b'/sub/%2e%2e/%2e%2e/outside', b'/sub/..%2f..%2foutside',
             b'/sub/%2e%2e%2findex.html', b'/sub/../index.html',
             b'/%00', b'/index.html%00.txt', b'/sub/..%00/',
             b'//etc/passwd', b'/%2fetc%2fpasswd', b'/..%5c..%5coutside',
             b'/%252e%252e/outside', b'/link', b'/sub/link',
             b'http://127.0.0.1/../outside', b'../outside', b'*']

WRONG = [(b'PUT', b'/'), (b'DELETE', b'/events'), (b'POST', b'/events'),
         (b'PATCH', b'/api/invoices'), (b'POST', b'/api/stats'),
         (b'PUT', b'/api/state'), (b'GET', b'/api/start'),
         (b'DELETE', b'/api/stop'), (b'POST', b'/healthz'),
         (b'PUT', b'/metrics'), (b'POST', b'/index.html'),
         (b'TRACE', b'/'), (b'CONNECT', b'/'), (b'BREW', b'/')]

CSRF = [b'Origin: http://evil.example\r\n',
        b'Origin: null\r\n',
        b'Origin: http://127.0.0.1:1\r\n',
        b'Origin: http://127.0.0.1.evil.example\r\n',
        b'Sec-Fetch-Site: cross-site\r\n',
        b'Sec-Fetch-Site: same-site\r\n',
        b'Origin: http://127.0.0.1:%d\r\nSec-Fetch-Site: cross-site\r\n']


async def main():
    # 1,000 slow connections and a pool of others need the descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    # Everything at once, as an attacker would: the slow connections
    # stay open while the rest runs beside them.
    slow = asyncio.ensure_future(slowloris(1000, 10, 0.5))
    over = asyncio.ensure_future(overstay(50, 1.0, 30))
    kover = asyncio.ensure_future(keepalive_overstay(20, 1.0, 30))
    idle = asyncio.ensure_future(keepalive_idle(20))
    going = asyncio.ensure_future(sends_on(5))
    out = []
    # Past 8 KiB the server answers 431 whatever the size, 1 MiB too,
    # and past 100 header lines whatever their length.
    size = b'X-Big: ' + b'a' * 9000 + b'\r\n'
    big = b'X-Big: ' + b'a' * 60000 + b'\r\n'
    huge = b'X-Big: ' + b'a' * 65536 + b'\r\n'
    mega = b'X-Big: ' + b'a' * (1 << 20) + b'\r\n'
    many = b''.join(b'X-H%d: %s\r\n' % (i, b'b' * 60) for i in range(800))
    lines = b''.join(b'X-H%d: b\r\n' % i for i in range(120))
    r = await pooled([get(b'/healthz', size), get(b'/healthz', big),
                      get(b'/healthz', huge), get(b'/healthz', mega),
                      get(b'/healthz', many), get(b'/healthz', lines)], 6)
    out.append('headers-9k-60k-64k-1m-many-lines ' +
               ' '.join(c for c, _ in r))
    # The same on a keep-alive connection's second request, and a
    # request line of 1 MiB there too.
    ok = b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
    r = [await answers(ok + get(b'/healthz', huge)),
         await answers(ok + get(b'/healthz', mega)),
         await answers(ok + get(b'/' + b'a' * (1 << 20)))]
    out.append('keepalive-second-64k-1m-line1m ' + ' '.join(r))
    # Pipelined: 300 good requests in one write, all answered in order.
    r = await answers(ok * 299 + get(b'/healthz'))
    out.append('pipelined ' + tally((c, b'') for c in r.split(',')))
    r = await pooled([get(b'/' + b'a' * (1 << 20)),
                      get(b'/api/invoices?before=' + b'9' * 5000)], 2)
    out.append('request-line-1m-5k ' + ' '.join(c for c, _ in r))
    out.append('garbage ' + tally(await pooled(garbage(10000), 50)))
    r = await pooled([get(p) for p in TRAVERSAL], 8)
    out.append('traversal ' + ' '.join('LEAK' if b'secret' in b else c
                                       for c, b in r))
    r = await pooled([b'%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                      b'Connection: close\r\nContent-Length: 0\r\n\r\n' % mp
                      for mp in WRONG], 8)
    out.append('methods ' + ' '.join(c for c, _ in r))
    reqs = []
    for path in (b'/api/start', b'/api/stop'):
        for h in CSRF:
            if b'%d' in h:
                h = h % PORT
            reqs.append(b'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s'
                        b'Connection: close\r\nContent-Length: 0\r\n\r\n'
                        % (path, PORT, h))
    out.append('csrf ' + tally(await pooled(reqs, 4)))
    # Ambiguous framing, each with a request behind it on the same
    # connection: a 400, and the connection closed, the second unanswered.
    post = b'POST /api/stop HTTP/1.1\r\nHost: 127.0.0.1\r\n'
    then = (b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'
            b'Connection: close\r\n\r\n')
    r = [await answers(post + h + then) for h in (
        b'Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}',
        b'Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
        b'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n')]
    # and unambiguous: both answered
    r.append(await answers(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                           b'Content-Length: 2\r\n\r\n{}' + then))
    out.append('smuggling ' + ' '.join(r))
    out.insert(0, 'slowloris ' + await slow)
    out.insert(1, 'slowloris-overstay ' + await over)
    out.insert(2, 'keepalive-overstay ' + await kover)
    out.insert(3, 'keepalive-idle ' + await idle)
    out.insert(4, 'sends-on-after-431 ' + await going)
    for line in out:
        print(line)
    print('took %.0f s' % (loop.time() - t0), file=sys.stderr)


asyncio.run(main())
