#!/bin/sh
# bench/invserve.sh: SSE fan-out, invserve side by side with nginx +
# nchan (Debian's libnginx-mod-nchan) on this machine, loopback only.
#
# For 1,000 clients (and 10,000 when the open-file limit allows) each
# server streams the same invoice lines to every client: invserve reads
# them from its FIFO, nchan gets them POSTed to its publisher endpoint.
# bench/sseload.c (epoll, one process) holds the clients and publishes,
# so one clock times every delivery: latency from the line being written
# to each client reading it, p50 and p99 over every (event, client).
# RSS per client is the server's resident memory with the clients
# connected, less its memory before, over the number of clients (nginx:
# master and worker together). CPU is the server's user+system time for
# the run. One nginx worker, as invserve is one thread.
#
# Each size runs BENCH_REPS times (default 3), the two servers in turn,
# and the median of each figure is printed: the machine is shared.
# Bounded: about three minutes in all. Not part of make check.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=$root/bench/out
mkdir -p "$out"
CLIENTS=${BENCH_CLIENTS:-"1000 10000"}
REPS=${BENCH_REPS:-3}
summary=${INV_BENCH_SUMMARY:-/dev/null}

have_nchan=1
if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ] ||
    ! command -v nginx >/dev/null; then
	if [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends nginx-light \
	    libnginx-mod-nchan >/dev/null 2>&1; then
		:
	else
		echo "bench: nginx + nchan missing (apt-get install nginx-light" \
		    "libnginx-mod-nchan); invserve alone" >&2
		have_nchan=0
	fi
fi

cc -O2 -Wall -D_GNU_SOURCE -o "$out/sseload" bench/sseload.c
[ -x cmd/invserve/invserve ] || make -s cmd/invserve/invserve

# Room for the clients in sseload and in the servers.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)

rss_kib() {	# PIDS...: resident KiB, summed
	for p in "$@"; do awk '/^VmRSS/ { print $2 }' "/proc/$p/status"; done |
	    awk '{ s += $1 } END { print s + 0 }'
}
cpu_ticks() {	# PIDS...: user + system clock ticks, summed
	for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat"; done |
	    awk '{ s += $1 } END { print s + 0 }'
}
free_port() {	# [TRY]: a port no one listens on now, another for each TRY
	p=$((20000 + ($$ + ${1:-0} * 4099) % 20000))
	while ss -ltn | awk '{ print $4 }' | grep -q ":$p\$"; do p=$((p + 1)); done
	echo "$p"
}

# run NAME CLIENTS EVENTS RATE PORT PIDS -- SSELOAD-ARGS...: one run; prints
# "p50_ms p99_ms rss_kib_per_client cpu_s delivered expected"
measure() {
	n=$1 events=$2 rate=$3 port=$4 pids=$5
	shift 5
	rss0=$(rss_kib $pids)
	cpu0=$(cpu_ticks $pids)
	"$out/sseload" -p "$port" -P /events -n "$n" -e "$events" -r "$rate" \
	    -t 90 "$@" > "$out/load.out" 2> "$out/load.err" &
	lp=$!
	i=0
	until grep -q connected "$out/load.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 "$lp" 2>/dev/null; then
			cat "$out/load.err" >&2
			break
		fi
		sleep 0.1
	done
	rss1=$(rss_kib $pids)
	wait "$lp" || true
	cpu1=$(cpu_ticks $pids)
	hz=$(getconf CLK_TCK)
	awk -v n="$n" -v e="$events" -v r0="$rss0" -v r1="$rss1" \
	    -v c0="$cpu0" -v c1="$cpu1" -v hz="$hz" '
	    /^clients=/ {
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "%.2f %.2f %.1f %.2f %d %d\n", v["p50_us"] / 1000,
		    v["p99_us"] / 1000, (r1 - r0) / n, (c1 - c0) / hz,
		    v["delivered"], n * e
	    }' "$out/load.out"
}

run_invserve() {	# CLIENTS EVENTS RATE
	fifo=$out/display.fifo
	# not the last run's messages, read before this one starts
	rm -f "$fifo" "$out/invserve.err"
	env -u REDIS_URL -u DATABASE_URL cmd/invserve/invserve -v \
	    -l 127.0.0.1:0 -i "$fifo" --backfill 0 --max-clients $(($1 + 100)) \
	    2> "$out/invserve.err" &
	sp=$!
	i=0
	until grep -q 'listening on' "$out/invserve.err"; do
		i=$((i + 1)); [ $i -gt 50 ] && { cat "$out/invserve.err" >&2; exit 1; }
		sleep 0.1
	done
	port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\)/.*|\1|p' "$out/invserve.err")
	measure "$1" "$2" "$3" "$port" "$sp" -f "$fifo"
	kill "$sp"; wait "$sp" 2>/dev/null || true
}

run_nchan() {	# CLIENTS EVENTS RATE
	d=$out/nginx
	user=
	[ "$(id -u)" = 0 ] && user="user root;"
	lim=$nofile; [ "$lim" -gt 30000 ] && lim=30000
	# The port may be taken between the look and nginx's bind (other
	# work shares the machine): then another port, three times.
	try=0
	while :; do
		port=$(free_port $try)
		rm -rf "$d"; mkdir -p "$d"
		sed -e "s|@DIR@|$d|g" -e "s|@PORT@|$port|g" -e "s|@USER@|$user|" \
		    -e "s|worker_rlimit_nofile 30000|worker_rlimit_nofile $lim|" \
		    -e "s|worker_connections 30000|worker_connections $lim|" \
		    bench/nchan.conf.in > "$d/nginx.conf"
		nginx -p "$d" -c "$d/nginx.conf" 2> "$d/start.err" &
		np=$!
		i=0
		until [ -s "$d/nginx.pid" ] && pgrep -P "$(cat "$d/nginx.pid")" >/dev/null; do
			i=$((i + 1))
			{ [ $i -gt 50 ] || ! kill -0 "$np" 2>/dev/null; } && break
			sleep 0.1
		done
		[ -s "$d/nginx.pid" ] && pgrep -P "$(cat "$d/nginx.pid")" >/dev/null && break
		try=$((try + 1))
		if ! grep -q 'Address already in use' "$d/start.err" || [ $try -ge 3 ]; then
			cat "$d/start.err" "$d/nginx-error.log" >&2
			exit 1
		fi
		kill "$np" 2>/dev/null || true; wait "$np" 2>/dev/null || true
	done
	pids="$(cat "$d/nginx.pid") $(pgrep -P "$(cat "$d/nginx.pid")" | tr '\n' ' ')"
	measure "$1" "$2" "$3" "$port" "$pids" -u /pub
	kill "$(cat "$d/nginx.pid")"; wait "$np" 2>/dev/null || true
}

# median FILE: per column, the median of the runs' lines
median() {
	awk '{ for (i = 1; i <= NF; i++) v[i, NR] = $i; nf = NF }
	    END {
		for (i = 1; i <= nf; i++) {
			for (j = 1; j <= NR; j++) a[j] = v[i, j]
			for (j = 2; j <= NR; j++)	# insertion sort, a few runs
				for (k = j; k > 1 && a[k - 1] + 0 > a[k] + 0; k--) {
					t = a[k]; a[k] = a[k - 1]; a[k - 1] = t
				}
			printf "%s%s", a[int((NR + 1) / 2)], i < nf ? " " : "\n"
		}
	    }' "$1"
}

printf 'median of %d runs each, taken in turn\n' "$REPS"
printf '%-8s %-12s %9s %9s %12s %7s %s\n' clients server p50_ms p99_ms \
    rss_KiB/cl cpu_s delivered
for n in $CLIENTS; do
	if [ $((n + 300)) -gt "$nofile" ]; then
		echo "bench: $n clients need an open-file limit above $((n + 300)) (have $nofile); skipped"
		printf 'invserve, %s SSE clients\tskipped: open-file limit %s\t-\t-\t-\n' \
		    "$n" "$nofile" >> "$summary"
		continue
	fi
	if [ "$n" -ge 5000 ]; then events=100 rate=10; else events=200 rate=20; fi
	: > "$out/a.$n"; : > "$out/b.$n"
	r=0
	while [ $r -lt "$REPS" ]; do
		run_invserve "$n" "$events" "$rate" >> "$out/a.$n"
		[ $have_nchan = 1 ] && run_nchan "$n" "$events" "$rate" >> "$out/b.$n"
		r=$((r + 1))
	done
	set -- $(median "$out/a.$n")
	printf '%-8s %-12s %9s %9s %12s %7s %s/%s\n' "$n" invserve "$1" "$2" "$3" "$4" "$5" "$6"
	a50=$1 a99=$2 arss=$3 acpu=$4
	set -- - - - -
	if [ $have_nchan = 1 ]; then
		set -- $(median "$out/b.$n")
		printf '%-8s %-12s %9s %9s %12s %7s %s/%s\n' "$n" nginx+nchan "$1" "$2" "$3" "$4" "$5" "$6"
		awk -v a50="$a50" -v a99="$a99" -v ar="$arss" -v ac="$acpu" \
		    -v b50="$1" -v b99="$2" -v br="$3" -v bc="$4" 'BEGIN {
			printf "%-8s %-12s %9s %9s %12s %7s\n", "", "nchan/invs",
			    (a50 > 0 ? sprintf("%.2fx", b50 / a50) : "-"),
			    (a99 > 0 ? sprintf("%.2fx", b99 / a99) : "-"),
			    (ar > 0 ? sprintf("%.2fx", br / ar) : "-"),
			    (ac > 0 ? sprintf("%.2fx", bc / ac) : "-")
		}'
	fi
	# The key rows for bench/run's table: nginx + nchan is the anchor.
	awk -v n="$n" -v a50="$a50" -v a99="$a99" \
	    -v ar="$arss" -v ac="$acpu" -v b50="$1" -v b99="$2" -v br="$3" \
	    -v bc="$4" 'function row(what, a, b, unit) {
		printf "invserve, %s SSE clients: %s\t%s %s\t", \
		    n, what, a, unit
		if (b == "-") printf "-\t-\t-\n"
		else printf "nginx + nchan %s %s\t%s\t-\n", b, unit,
		    (b > 0 ? sprintf("%.2fx", a / b) : "-")
	    }
	    BEGIN {
		row("latency p50", a50, b50, "ms")
		row("latency p99", a99, b99, "ms")
		row("RSS per client", ar, br, "KiB")
		row("CPU", ac, bc, "s")
	    }' >> "$summary"
done
