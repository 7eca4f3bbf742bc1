#!/bin/sh
# bench/stack.sh: the whole stack's memory during a cycle. `invctl up`
# on private servers runs one cycle of 1,500 invoices ten times faster
# than the default (50/s for 30 s, shown at 20/s, so the backlog grows to
# 900 and drains, as in a real cycle), with one SSE client reading the
# stream. Every 0.25 s the resident memory (VmRSS) of invctl and each of
# its children is read and summed, with its split into anonymous pages
# and the pages of files (RssAnon, RssFile: libraries mostly), and PSS
# too (shared library pages counted once over the processes that share
# them). The anchor is the
# same run's redis-server: one small C server holding the stack's keys.
# About 80 s. Run: sh bench/stack.sh
set -eu
. "$(dirname "$0")/lib.sh"
bench_servers
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
run=$bench_tmp/run

invctl up -q --rundir "$run" --display-rate 20 -l "127.0.0.1:$port" \
    > "$bench_tmp/up.out" 2> "$bench_tmp/up.err" &
up=$!
client=
trap 'kill $client $up 2>/dev/null; wait $up 2>/dev/null; sh "$root/tests/servers" stop "$bench_tmp/servers" >/dev/null 2>&1; rm -rf "$bench_tmp"' EXIT
i=0
until curl -sf "$url/healthz" -o /dev/null; do
	i=$((i + 1))
	[ $i -gt 150 ] && { cat "$bench_tmp/up.err" >&2; exit 1; }
	sleep 0.1
done
curl -sN "$url/events" > "$bench_tmp/sse" &
client=$!

python3 - "$up" "$(cat "$INV_SERVERS_DIR/redis.pid")" "$bench_tmp/done" \
    > "$bench_tmp/samples" <<'PY' &
# One line a sample: for each process of the stack "name rss pss anon
# file" (KiB), then the same for redis-server. Stops when the file
# argv[3] exists.
import os, sys, time
root, redis, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def kib(pid, path, key):
    try:
        for line in open("/proc/%d/%s" % (pid, path)):
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
def tree():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open("/proc/%s/stat" % d).read()
            except OSError:
                continue
            ppid = int(st[st.rfind(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out
while not os.path.exists(done):
    row = []
    for p in tree() + [redis]:
        try:
            name = open("/proc/%d/comm" % p).read().strip()
        except OSError:
            continue
        row.append("%s %d %d %d %d" % (name, kib(p, "status", "VmRSS:"),
                                       kib(p, "smaps_rollup", "Pss:"),
                                       kib(p, "status", "RssAnon:"),
                                       kib(p, "status", "RssFile:")))
    print(",".join(row), flush=True)
    time.sleep(0.25)
PY
sampler=$!

state() { invctl status | jq -r .state; }
t0=$(now_ms)
invctl start -r 50 -d 30 > /dev/null
seen=
while :; do
	s=$(state)
	case $s in draining) seen=1 ;; idle) [ -n "$seen" ] && break ;; esac
	[ $(( $(now_ms) - t0 )) -gt 240000 ] && { echo "bench: the cycle did not end" >&2; exit 1; }
	sleep 0.2
done
cycle=$(( $(now_ms) - t0 ))
touch "$bench_tmp/done"
wait "$sampler"
shown=$(grep -c '^event: invoice' "$bench_tmp/sse" || true)
rows=$(psql "$DATABASE_URL" -XtAc "SELECT count(*) FROM invoices")
[ "$rows" -eq 1500 ] && [ "$shown" -eq 1500 ] || {
	echo "bench: the cycle stored $rows and showed $shown invoices, not 1500" >&2
	exit 1
}

# Per program its peak; for the stack the peak and the mean of the sums.
awk -v cycle="$cycle" -v summary="${INV_BENCH_SUMMARY:-/dev/null}" '
BEGIN { FS = "," }
{
	rss = pss = 0
	delete seen
	for (i = 1; i <= NF; i++) {
		split($i, f, " ")
		name = f[1]
		if (name == "redis-server") { r = f[2]; rp = f[3]; continue }
		n = ++seen[name]
		key = n > 1 ? name " #" n : name
		if (f[2] > peak[key]) { peak[key] = f[2]; anon[key] = f[4]; file[key] = f[5] }
		if (!(key in order)) { order[key] = ++nk; keys[nk] = key }
		rss += f[2]; pss += f[3]
	}
	if (rss > maxrss) maxrss = rss
	if (pss > maxpss) maxpss = pss
	if (r > maxr) maxr = r
	if (rp > maxrp) maxrp = rp
	sumrss += rss; samples++
}
END {
	printf "stack during one cycle: 1500 invoices at 50/s shown at 20/s, %.1f s, %d samples\n", cycle / 1000, samples
	printf "%-34s %10s %10s %10s\n", "process (peak)", "RSS KiB", "anon", "file"
	for (i = 1; i <= nk; i++) printf "  %-32s %10d %10d %10d\n", keys[i], peak[keys[i]], anon[keys[i]], file[keys[i]]
	printf "%-34s %10d\n", "stack, peak of the sums", maxrss
	printf "%-34s %10d\n", "stack, mean of the sums", sumrss / samples
	printf "%-34s %10d\n", "stack PSS, peak of the sums", maxpss
	printf "%-34s %10d\n", "redis-server (anchor), peak", maxr
	printf "%-34s %10d\n", "redis-server PSS, peak", maxrp
	printf "%-34s %9.2fx\n", "ratio stack / redis-server (RSS)", maxrss / maxr
	printf "stack RSS during a cycle (peak, %d processes)\t%.1f MiB\tredis-server %.1f MiB\t%.2fx\t-\n", \
	    nk, maxrss / 1024, maxr / 1024, maxrss / maxr >> summary
}' "$bench_tmp/samples"
