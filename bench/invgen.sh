#!/bin/sh
# invgen: raw generation speed, speed into PostgreSQL beside psql's own
# \copy of the same rows (the database's limit), and the schedule error
# of a 5/s run (a minute). Run: sh bench/invgen.sh [COUNT]
set -eu
. "$(dirname "$0")/lib.sh"
n=${1:-1000000}
bench_servers
cols="id, invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount"

t=$(now_ms); invgen -q --no-db -r 0 -n "$n" > /dev/null; gen=$(( $(now_ms) - t ))

# Each load starts from the same server state: an empty table and a
# checkpoint just taken. A fresh cluster has no WAL segments to recycle
# and creates them (zero-filled) as the first large load goes, which
# would fall on whichever is timed first: an untimed load goes before.
fresh() {
	psql "$DATABASE_URL" -qXc "TRUNCATE invoices RESTART IDENTITY"
	psql "$DATABASE_URL" -qXc "CHECKPOINT"
}
invgen -q -r 0 -n "$n" > /dev/null
fresh
t=$(now_ms); invgen -r 0 -n "$n" > /dev/null; db=$(( $(now_ms) - t ))
psql "$DATABASE_URL" -qXc "\\copy invoices ($cols) TO '$bench_tmp/rows.copy'"
psql "$DATABASE_URL" -qXc "\\copy invoices ($cols) TO '$bench_tmp/rows.bin' (FORMAT binary)"
fresh
t=$(now_ms); psql "$DATABASE_URL" -qXc "\\copy invoices ($cols) FROM '$bench_tmp/rows.copy'"; copy=$(( $(now_ms) - t ))
# invgen sends COPY's binary format: the same rows that way, for scale.
fresh
t=$(now_ms); psql "$DATABASE_URL" -qXc "\\copy invoices ($cols) FROM '$bench_tmp/rows.bin' (FORMAT binary)"; bin=$(( $(now_ms) - t ))

# Schedule error: when each line arrives minus when it was planned (its
# invoice_date is the planned time, t0 + k/rate), committed to PostgreSQL.
# bench/linetime.c stamps each line as read(2) returns it, on short time
# slices itself, so the reader's own wake-up weighs little on the figure
# (a Python reader added its own delays, up to 16 ms, to invgen's). 300
# lines (60 s) make the 99th percentile one, not the worst line.
make -s lib/libinv.a
cc -O2 -Wall -D_GNU_SOURCE -Ilib -o "$bench_tmp/linetime" bench/linetime.c \
    lib/libinv.a -lbsd
psql "$DATABASE_URL" -qXc "TRUNCATE invoices RESTART IDENTITY"
sched=$(invgen -r 5 -n 301 | "$bench_tmp/linetime" | python3 -c '
import sys, json, datetime
err = []
for line in sys.stdin:
    arrived, inv = line.split(" ", 1)
    d = datetime.datetime.strptime(json.loads(inv)["invoice_date"], "%Y-%m-%dT%H:%M:%S.%fZ")
    planned = d.replace(tzinfo=datetime.timezone.utc).timestamp()
    err.append(int(arrived) / 1000 - planned * 1000)
err = err[1:]          # the first line also carries the connection set-up
err.sort()
q = lambda p: err[min(len(err) - 1, int(p * len(err)))]
print("%.3f %.3f %.3f %d" % (q(0.5), q(0.99), err[-1], len(err)))')
set -- $sched

printf '%-44s %10s %10s %8s\n' "invgen ($n invoices)" "inv" "anchor" "ratio"
printf '%-44s %8d ms %10s %8s\n' "-r 0 --no-db > /dev/null" "$gen" "-" "-"
printf '%-44s %8d ms %7d ms %7.2fx\n' "-r 0 into PostgreSQL vs psql \\copy" "$db" "$copy" \
    "$(echo "$db $copy" | awk '{ print $1 / $2 }')"
printf '%-44s %8d ms %7d ms %7.2fx\n' "  the same vs psql \\copy (FORMAT binary)" "$db" "$bin" \
    "$(echo "$db $bin" | awk '{ print $1 / $2 }')"
printf '%-44s p50 %s ms, p99 %s ms, max %s ms (%s lines; target p99 < 2 ms)\n' "schedule error at 5/s, into PostgreSQL" "$1" "$2" "$3" "$4"
printf '%s\n' "target: into PostgreSQL within 1.25x of psql \\copy (text, its default)"
ratio=$(echo "$db $copy" | awk '{ printf "%.2f", $1 / $2 }')
printf '%s\t%s\t%s\t%s\t%s\n' "invgen -r 0: $n invoices into PostgreSQL" "$db ms" \
    "psql \\copy $copy ms" "${ratio}x" "<= 1.25x" \
    "invgen -r 5: schedule error p99" "$2 ms" - - "< 2 ms" >> "${INV_BENCH_SUMMARY:-/dev/null}"
