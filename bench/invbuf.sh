#!/bin/sh
# invbuf beside `pv -q -l -L 2` (the anchor) on the same bursty input:
# three bursts of 10 lines 8 s apart (each burst takes 4.5 s to show at
# 2/s, so each is followed by an idle spell), fed to every limiter at
# once. For each: the most lines in any 1 s window, and the spacing
# error |gap - 1/RATE| over the pairs whose second line was already
# waiting, so the limiter alone chose the gap. Target for invbuf: at
# most 2 lines in any second, p99 spacing error under 2 ms. About 25 s.
# Run: sh bench/invbuf.sh [RATE]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rate=${1:-2}
command -v pv >/dev/null || { echo "bench: pv is not installed (make deps)" >&2; exit 69; }
[ -x cmd/invbuf/invbuf ] && [ -x cmd/invgen/invgen ] || make -s all
tmp=$(mktemp -d /tmp/inv-bench.XXXXXX)
chmod 755 "$tmp"
trap 'sh tests/servers stop "$tmp/servers" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
sh tests/servers start "$tmp/servers" > "$tmp/env"
. "$tmp/env"
cmd/invgen/invgen -q --no-db -r 0 -n 30 > "$tmp/in"

python3 - "$rate" "$tmp/in" <<'EOF'
import os, selectors, subprocess, sys, time

rate = float(sys.argv[1])
lines = open(sys.argv[2], "rb").read().splitlines(keepends=True)
period = 1.0 / rate
pause = 8.0                            # 10 lines take 4.5 s at 2/s
tools = [
    ("invbuf", ["cmd/invbuf/invbuf", "--no-redis", "-r", sys.argv[1]]),
    ("invbuf+Redis", ["cmd/invbuf/invbuf", "-r", sys.argv[1]]),
    ("pv -q -l -L %s" % sys.argv[1], ["pv", "-q", "-l", "-L", sys.argv[1]]),
]
procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
         for _, argv in tools]
out = [[] for _ in tools]
part = [b"" for _ in tools]

# One thread, one select loop: each output is stamped the moment it is
# readable (threads would wait on the GIL and blur the timing), and the
# input goes out on its schedule from the same loop.
t0 = time.monotonic() + 0.3            # every tool up and reading
feed = [(t0 + k % 10 * 0.001 + k // 10 * pause, line)
        for k, line in enumerate(lines)]
arrive = []
sel = selectors.DefaultSelector()
for i, p in enumerate(procs):
    sel.register(p.stdout, selectors.EVENT_READ, i)
open_outputs = len(procs)
while open_outputs:
    timeout = max(0, feed[0][0] - time.monotonic()) if feed else None
    for key, _ in sel.select(timeout):
        i = key.data
        b = os.read(key.fd, 65536)
        t = time.monotonic()
        if not b:
            sel.unregister(key.fileobj)
            open_outputs -= 1
            continue
        part[i] += b
        n = part[i].count(b"\n")
        out[i] += [t] * n
        part[i] = part[i][part[i].rfind(b"\n") + 1:]
    while feed and feed[0][0] <= time.monotonic():
        arrive.append(time.monotonic())
        for p in procs:
            p.stdin.write(feed[0][1])
            p.stdin.flush()
        feed.pop(0)
        if not feed:
            for p in procs:
                p.stdin.close()
for p in procs:
    p.wait()

def figures(ts):
    n = len(ts)
    window = max(sum(1 for u in ts[i:] if u < ts[i] + 1.0) for i in range(n))
    err = sorted(abs((ts[k] - ts[k - 1]) - period) * 1000
                 for k in range(1, n) if arrive[k] <= ts[k - 1])
    under = sum(1 for k in range(1, n) if ts[k] - ts[k - 1] < period - 0.002)
    q = lambda p: err[min(len(err) - 1, int(p * len(err)))]
    return n, window, q(0.5), q(0.99), err[-1], under, ts[-1] - arrive[0], len(err)

res = [figures(o) for o in out]
if os.environ.get("BENCH_DEBUG"):
    for o in out:
        print(" ".join("%.4f" % (o[k] - o[k - 1]) for k in range(1, len(o))))
w = 14
print("invbuf vs pv, %g lines/s, input: 3 bursts of 10 lines, 8 s apart" % rate)
print("%-34s" % "" + "".join("%*s" % (w, name) for name, _ in tools) + "%10s" % "ratio")
rows = [("lines out", 0, "%d"), ("max lines in any 1 s window", 1, "%d"),
        ("spacing error p50 (ms)", 2, "%.3f"), ("spacing error p99 (ms)", 3, "%.3f"),
        ("spacing error max (ms)", 4, "%.3f"), ("pairs measured", 7, "%d"),
        ("gaps under 1/RATE - 2 ms", 5, "%d"),
        ("last line after first input (s)", 6, "%.2f")]
for label, i, fmt in rows:
    cells = "".join("%*s" % (w, fmt % r[i]) for r in res)
    a, b = res[2][i], res[0][i]
    ratio = "%.0fx" % (a / b) if i in (3, 4) and b > 0 else "-"
    print("%-34s%s%10s" % (label, cells, ratio))
print("target for invbuf: at most %d lines in any 1 s, p99 spacing error < 2 ms"
      % int(rate))
print("ratio: pv's error over invbuf's (no Redis)")
ok = res[0][1] <= int(rate) and res[0][3] < 2 and res[0][0] == len(lines)
print("invbuf: %s" % ("meets the target" if ok else "MISSES the target"))
EOF
