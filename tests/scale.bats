#!/usr/bin/env bats
# Past one machine: several invgen into one PostgreSQL, several invserve
# on one Redis (one reading the pipeline's FIFO, the others subscribed to
# NS:display with --source redis), EventSource clients on each.

load helper
load sse

setup_file() { sse_install; }
setup() { sse_setup; }
teardown() { stop_pids; }

# two_servers: invserve on the FIFO at $fed, and --source redis at $sub.
two_servers() {
	serve
	fed=$URL
	serve --source redis
	sub=$URL
	wait_for 10 sh -c "curl -s '$sub/healthz' | grep -q '\"redis\":\"ok\"'"
}

# writers N: invgen | invstats | invbuf into the FIFO (its invgen's lines
# in $T/gen1), and beside it a second invgen | invstats into the same
# database and statistics (lines in $T/gen2); N invoices each, at once.
# Sets p1 and p2.
writers() {
	invgen -q -r 30 -n "$1" | tee "$T/gen1" | invstats | invbuf -r 100 > "$FIFO" &
	p1=$!
	invgen -q -r 30 -n "$1" | invstats > "$T/gen2" &
	p2=$!
	PIDS="$PIDS $p1 $p2"
}

# api_stats_is URL JSON: /api/stats agrees with the stats JSON.
api_stats_is() {
	local f='{count, total_amount, vat_amount, average_amount, source}'
	[ "$(curl -sf "$1/api/stats" | jq -c "$f")" = "$(jq -c "$f" <<< "$2")" ]
}

@test "two invgen into one database, two invserve on one Redis: one stream, exact stats" {
	two_servers
	# a client of each kind on each server, and 20 more on each
	client "$fed/events" --out "$T/c1" --count 150 --timeout 90
	c1=$CLIENT_PID
	client "$sub/events" --out "$T/c2" --count 150 --timeout 90
	c2=$CLIENT_PID
	client "$fed/events" --clients 20 --out "$T/m1" --count 150 --timeout 90
	m1=$CLIENT_PID
	client "$sub/events" --clients 20 --out "$T/m2" --count 150 --timeout 90
	m2=$CLIENT_PID

	# the displayed pipeline, and a second writer at the same time
	writers 150
	wait $p1
	wait $p2
	wait $c1
	wait $c2
	wait $m1
	wait $m2

	# 300 rows, unique numbers, and the two writers' ids interleave
	[ "$(db -c 'SELECT count(*), count(DISTINCT invoice_number) FROM invoices')" = "300|300" ]
	jq .id "$T/gen1" > "$T/ids1"
	jq .id "$T/gen2" > "$T/ids2"
	[ "$(wc -l < "$T/ids1")" -eq 150 ]
	[ "$(wc -l < "$T/ids2")" -eq 150 ]
	diff <(sort -n "$T/ids1" "$T/ids2") <(db -c 'SELECT id FROM invoices ORDER BY id')
	[ "$(sort -n "$T/ids1" | tail -1)" -gt "$(sort -n "$T/ids2" | head -1)" ]
	[ "$(sort -n "$T/ids2" | tail -1)" -gt "$(sort -n "$T/ids1" | head -1)" ]

	# every client, on either server, saw the displayed invoices in the
	# order they were generated, each once, all of them
	diff <(ids_of "$T/c1") "$T/ids1"
	diff <(ids_of "$T/c2") "$T/ids1"
	want=$(paste -sd, "$T/ids1")
	[ "$(sort -u "$T/m1" "$T/m2")" = "$want" ]
	[ "$(wc -l < "$T/m1")" -eq 20 ]
	[ "$(wc -l < "$T/m2")" -eq 20 ]
	# and the invoice events carried the lines as generated
	diff <(awk -F '\t' '$1 == "invoice" { print $3 }' "$T/c2") "$T/gen1"

	# the statistics of both writers, exact to the cent, wherever read
	[ "$(stats_redis)" = "$(stats_db)" ]
	[ "$(invstats show)" = "$(json_db redis)" ]
	wait_for 10 api_stats_is "$fed" "$(json_db redis)"
	wait_for 10 api_stats_is "$sub" "$(json_db redis)"
}

@test "a client that moves from the FIFO-fed server to a --source redis one resumes with no gap" {
	two_servers
	client "$fed/events" --out "$T/a" --count 60 --timeout 60
	a=$CLIENT_PID
	writers 60
	wait $a
	# a browser sent to the other server by the balancer resumes there
	# from the last id it saw on the first, as the page does
	last=$(ids_of "$T/a" | sed -n 30p)
	client "$sub/events" --out "$T/b" --last-event-id "$last" --count 30 --timeout 60
	wait $CLIENT_PID
	wait $p1
	wait $p2
	jq .id "$T/gen1" > "$T/ids1"
	diff <(ids_of "$T/a") "$T/ids1"
	diff <({ ids_of "$T/a" | head -30; ids_of "$T/b"; }) "$T/ids1"
	[ "$(stats_redis)" = "$(stats_db)" ]
}
