#!/bin/sh
# bench/invstats.sh: `invstats show` from Redis against from PostgreSQL
# (the anchor) at 1,000,000 invoices, and the filter's throughput.
# Starts a private PostgreSQL and Redis in a temporary directory
# (tests/servers) and always stops them.
#
# INV_BENCH_INVOICES (default 1000000), INV_BENCH_CALLS (default 200
# calls from Redis; a tenth of that from PostgreSQL).
#
# Each call is a whole process, so "process start" (invstats --version)
# is printed too: the dynamic loader mapping hiredis and libbsd (libpq
# is mapped only when invstats talks to PostgreSQL); the line below it
# is the query itself.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${INV_BENCH_INVOICES:-1000000}
calls=${INV_BENCH_CALLS:-200}
pgcalls=$((calls / 10 > 0 ? calls / 10 : 1))

tmp=$(mktemp -d /tmp/inv-bench.XXXXXX)
chmod 755 "$tmp"
cleanup() {
	sh tests/servers stop "$tmp/servers" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
INV_PG_FAST=1 sh tests/servers start "$tmp/servers" > "$tmp/env"
. "$tmp/env"
sql/migrate >/dev/null
PATH=$root/cmd/invgen:$root/cmd/invstats:$PATH

now() { date +%s%N; }
# us_per CALLS COMMAND...: mean wall time of one call, in microseconds.
us_per() {
	local k=$1 i=0 t0
	shift
	"$@" > /dev/null 2>&1		# warm up
	t0=$(now)
	while [ $i -lt "$k" ]; do
		"$@" > /dev/null 2>&1
		i=$((i + 1))
	done
	echo $(( ($(now) - t0) / 1000 / k ))
}
ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }'; }

echo "invstats: filling PostgreSQL with $n invoices (invgen -r 0 | invstats)"
t0=$(now)
invgen -q -r 0 -n "$n" | invstats -q > "$tmp/lines"
fill=$(( ($(now) - t0) / 1000000 ))
a=$(invstats show)
b=$(invstats -q --no-redis show)
[ "${a%,\"source\"*}" = "${b%,\"source\"*}" ] || {
	echo "invstats: Redis and PostgreSQL disagree: $a / $b" >&2
	exit 1
}
echo "  $a"
echo "  pipeline invgen | invstats: $n invoices in $fill ms"

redis=$(us_per "$calls" invstats show)
pg=$(us_per "$pgcalls" invstats -q --no-redis show)
start=$(us_per "$calls" invstats --version)
echo
echo "invstats show, $n invoices        per call     ratio"
printf '  %-32s %-12s %s\n' "from PostgreSQL (anchor)" "$(ms "$pg")" "1.0x"
printf '  %-32s %-12s %s\n' "from Redis" "$(ms "$redis")" "$(ratio "$pg" "$redis")"
printf '  %-32s %-12s %s\n' "process start (--version)" "$(ms "$start")" ""
# With libpq mapped only when needed, the start is most of a call, and
# the difference can fall within the noise of the two means.
if [ $((redis - start)) -gt 0 ]; then
	work=$((redis - start))
	printf '  %-32s %-12s %s\n' "from Redis less process start" "$(ms "$work")" "$(ratio "$((pg - start))" "$work")"
else
	printf '  %-32s %s\n' "from Redis less process start" "within the noise of the start"
fi
echo "  target: from Redis at least 100x faster ($calls and $pgcalls calls)"

# The filter alone on a file of lines, into a pipe (one write per line).
echo
echo "invstats filter, $n lines into a pipe     lines/s"
rate() {
	local t0 el
	t0=$(now)
	"$@" < "$tmp/lines" | cat > /dev/null
	el=$(( ($(now) - t0) / 1000 ))
	awk -v n="$n" -v u="$el" 'BEGIN { printf "%.0f", n / (u / 1e6) }'
}
cat_rate=$(rate cat)
check=$(rate invstats -q --no-db --no-redis)
count=$(rate env INV_NAMESPACE=bench invstats -q --no-db)
[ "$(redis-cli -s "${REDIS_URL#unix://}" HGET bench:stats count)" = "$n" ] || {
	echo "invstats: the filter did not count $n lines" >&2
	exit 1
}
printf '  %-34s %10s  %s\n' "cat (anchor)" "$cat_rate" "1.0x"
printf '  %-34s %10s  %s\n' "checking only (--no-db --no-redis)" "$check" "$(ratio "$check" "$cat_rate")"
printf '  %-34s %10s  %s\n' "checking and counting in Redis" "$count" "$(ratio "$count" "$cat_rate")"

# The key rows for bench/run's table.
{
	printf 'invstats show: from Redis, %s invoices\t%s\tPostgreSQL aggregate %s\t%s\t<= 0.01x\n' \
	    "$n" "$(ms "$redis")" "$(ms "$pg")" "$(awk -v a="$redis" -v b="$pg" 'BEGIN { printf "%.3fx", a / b }')"
	printf 'invstats: filter counting in Redis\t%s lines/s\tcat %s lines/s\t%s\t-\n' \
	    "$count" "$cat_rate" "$(awk -v a="$count" -v b="$cat_rate" 'BEGIN { printf "%.3fx", a / b }')"
} >> "${INV_BENCH_SUMMARY:-/dev/null}"
