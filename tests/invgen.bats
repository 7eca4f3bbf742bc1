#!/usr/bin/env bats
# invgen: counts, format, money rules, persistence, signals, usage.

load helper

setup() {
	db_reset
	T=$BATS_TEST_TMPDIR
}

@test "default cycle is exactly 1500 invoices (as fast as possible with -r 0)" {
	invgen -q --no-db -r 0 > "$T/out"
	[ "$(wc -l < "$T/out")" -eq 1500 ]
}

@test "rate times duration gives the count: -r 200 -d 1 is 200, -r 2.5 -d 2 is 5" {
	invgen -q --no-db -r 200 -d 1 > "$T/a"
	[ "$(wc -l < "$T/a")" -eq 200 ]
	invgen -q --no-db -r 2.5 -d 2 > "$T/b"
	[ "$(wc -l < "$T/b")" -eq 5 ]
}

@test "exact counts into PostgreSQL at several rates" {
	for spec in "50 37" "0 2500" "1000 1200" "7 3"; do
		set -- $spec
		db_reset
		invgen -r "$1" -n "$2" > "$T/out"
		[ "$(wc -l < "$T/out")" -eq "$2" ]
		[ "$(db -c 'SELECT count(*) FROM invoices')" -eq "$2" ]
	done
}

@test "-n 0 prints nothing and exits 0" {
	run invgen -q --no-db -n 0
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "every line is JSON with the DESIGN.md keys in order" {
	invgen -q --no-db -r 0 -n 2000 > "$T/out"
	run sh -c "jq -c 'keys_unsorted' '$T/out' | sort -u"
	[ "$status" -eq 0 ]
	[ "$output" = '["id","invoice_number","invoice_date","seller_name","buyer_name","subtotal","vat_amount","total_amount"]' ]
	# amounts always carry exactly two decimals
	[ "$(grep -cE '"subtotal":[0-9]+\.[0-9]{2},"vat_amount":[0-9]+\.[0-9]{2},"total_amount":[0-9]+\.[0-9]{2}}$' "$T/out")" -eq 2000 ]
	# dates are RFC 3339 UTC with microseconds
	[ "$(jq -r .invoice_date "$T/out" | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$')" -eq 2000 ]
	# seller and buyer always differ
	[ "$(jq -r 'select(.seller_name == .buyer_name) | .id' "$T/out" | wc -l)" -eq 0 ]
}

@test "VAT is 15% half-up and total = subtotal + VAT on 100,000 invoices" {
	invgen -q --no-db -r 0 -n 100000 > "$T/out"
	run awk '{
		match($0, /"subtotal":[0-9.]+/); s = substr($0, RSTART + 11, RLENGTH - 11)
		match($0, /"vat_amount":[0-9.]+/); v = substr($0, RSTART + 13, RLENGTH - 13)
		match($0, /"total_amount":[0-9.]+/); t = substr($0, RSTART + 15, RLENGTH - 15)
		gsub(/\./, "", s); gsub(/\./, "", v); gsub(/\./, "", t)
		want = int((s * 15 + 50) / 100)
		if (v + 0 != want || t + 0 != s + v || s <= 0) bad++
		n++
	} END { print n, bad + 0 }' "$T/out"
	[ "$output" = "100000 0" ]
}

@test "the database's CHECKs reject a bad row even from psql" {
	run db -c "INSERT INTO invoices (invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount) VALUES ('X-1', now(), 'a', 'b', 100.00, 15.01, 115.01)"
	[ "$status" -ne 0 ]
	[[ "$output" == *invoices_vat_15_percent* ]]
	run db -c "INSERT INTO invoices (invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount) VALUES ('X-2', now(), 'a', 'b', 100.00, 15.00, 115.01)"
	[[ "$output" == *invoices_total_is_sum* ]]
	run db -c "INSERT INTO invoices (invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount) VALUES ('X-3', now(), 'a', 'b', -100.00, -15.00, -115.00)"
	[[ "$output" == *invoices_amounts_positive* ]]
	# half a cent rounds up: 0.10 * 15% = 0.015 -> 0.02
	db -c "INSERT INTO invoices (invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount) VALUES ('X-4', now(), 'a', 'b', 0.10, 0.02, 0.12)"
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 1 ]
}

@test "migrations are recorded and safe to apply twice" {
	run "$ROOT/sql/migrate"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(db -c "SELECT count(*) FROM schema_migrations WHERE version = '001_invoices'")" -eq 1 ]
}

@test "rows in the database equal the lines printed" {
	invgen -r 0 -n 3000 > "$T/out"
	lines_of "$T/out" > "$T/printed"
	db_rows > "$T/stored"
	[ "$(wc -l < "$T/stored")" -eq 3000 ]
	diff "$T/printed" "$T/stored"
}

@test "invoice numbers are unique, also with two invgen writing at once" {
	invgen -r 0 -n 4000 > "$T/a" &
	invgen -r 0 -n 4000 > "$T/b" &
	wait %1 && wait %2
	[ "$(cat "$T/a" "$T/b" | jq -r .invoice_number | sort -u | wc -l)" -eq 8000 ]
	[ "$(db -c 'SELECT count(DISTINCT invoice_number) FROM invoices')" -eq 8000 ]
	cat "$T/a" "$T/b" > "$T/both"
	diff <(lines_of "$T/both") <(db_rows)
	# and across a restart: numbers go on, never repeat
	invgen -r 0 -n 10 > "$T/c"
	[ "$(db -c 'SELECT count(DISTINCT invoice_number) FROM invoices')" -eq 8010 ]
}

@test "--seed with --start-time and --no-db is byte-identical run to run, at any rate" {
	invgen -q --no-db -s 42 --start-time 2026-12-03T15:00:00Z -r 0 -n 500 > "$T/a"
	invgen -q --no-db -s 42 --start-time 2026-12-03T15:00:00Z -r 0 -n 500 > "$T/b"
	cmp "$T/a" "$T/b"
	invgen -q --no-db -s 42 --start-time 2026-12-03T15:00:00Z -r 500 -n 50 > "$T/c"
	invgen -q --no-db -s 42 --start-time 2026-12-03T15:00:00Z -r 500 -n 50 > "$T/d"
	cmp "$T/c" "$T/d"
	# dates follow the schedule: invoice k at T + k/rate
	[ "$(sed -n 11p "$T/c" | jq -r .invoice_date)" = 2026-12-03T15:00:00.020000Z ]
	[ "$(sed -n 3p "$T/a" | jq -r .invoice_date)" = 2026-12-03T15:00:00.002000Z ]
	invgen -q --no-db -s 43 --start-time 2026-12-03T15:00:00Z -r 0 -n 500 > "$T/e"
	! cmp -s "$T/a" "$T/e"
}

@test "the schedule: 11 invoices at 10/s take about one second" {
	start=$(date +%s%N)
	invgen -q --no-db -r 10 -n 11 > "$T/out"
	el=$(( ($(date +%s%N) - start) / 1000000 ))
	[ "$(wc -l < "$T/out")" -eq 11 ]
	[ "$el" -ge 990 ]
	[ "$el" -lt 4000 ]
}

# After a stop mid-run: more than MIN and fewer than MAX lines printed,
# and the database holds exactly those invoices.
printed_are_committed() {
	local n
	n=$(wc -l < "$T/out")
	[ "$n" -gt "$1" ] && [ "$n" -lt "$2" ] &&
	    [ "$(db -c 'SELECT count(*) FROM invoices')" -eq "$n" ] &&
	    diff <(lines_of "$T/out") <(db_rows)
}

@test "SIGTERM mid-run: exit 0, and every printed invoice is committed" {
	invgen -r 20 -n 1000 > "$T/out" 2> "$T/err" &
	pid=$!
	sleep 1.5
	kill -TERM $pid
	wait $pid
	printed_are_committed 5 1000
}

@test "SIGINT stops at once with exit 0" {
	invgen -q --no-db -r 1 -n 100 > "$T/out" &
	pid=$!
	sleep 0.5
	kill -INT $pid
	wait $pid
	[ "$(wc -l < "$T/out")" -eq 1 ]
}

@test "SIGPIPE: the reader going away ends invgen quietly" {
	run bash -c 'invgen -q --no-db -r 0 -n 1000000 2>"$1" | head -1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$T/err"
	[ "$output" = 0 ]
	[ ! -s "$T/err" ]
}

@test "PostgreSQL going away mid-run: retried, nothing lost, nothing doubled" {
	invgen -r 20 -n 80 > "$T/out" 2> "$T/err" &
	pid=$!
	sleep 1
	pg_down
	sleep 2
	pg_up
	rc=0; wait $pid || rc=$?
	cat "$T/err"
	[ "$rc" -eq 0 ]
	[ "$(wc -l < "$T/out")" -eq 80 ]
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 80 ]
	diff <(lines_of "$T/out") <(db_rows)
	grep -q 'retrying' "$T/err"
	grep -q 'connected to PostgreSQL again' "$T/err"
}

# At -r 0 the batches are large and a second connection reserves ids:
# an outage must find both, with a COPY in flight.
@test "PostgreSQL going away during -r 0: retried, nothing lost, nothing doubled" {
	invgen -r 0 -n 1000000 > "$T/out" 2> "$T/err" &
	pid=$!
	wait_for 60 test -s "$T/out"
	pg_down
	sleep 1
	pg_up
	rc=0; wait $pid || rc=$?
	cat "$T/err"
	[ "$rc" -eq 0 ]
	grep -q 'retrying' "$T/err"
	[ "$(wc -l < "$T/out")" -eq 1000000 ]
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 1000000 ]
	diff <(sed -E 's/^\{"id":([0-9]+),.*/\1/' "$T/out" | sort -n) \
	    <(db -c 'SELECT id FROM invoices ORDER BY id')
}

@test "SIGTERM during -r 0: exit 0, and exactly the printed invoices are committed" {
	invgen -r 0 -n 1000000 > "$T/out" &
	pid=$!
	wait_for 60 test -s "$T/out"
	kill -TERM $pid
	wait $pid
	printed_are_committed 0 1000000
}

# pg_waiting EVENT [VERB]: a backend (running VERB) waits on EVENT.
pg_waiting() {
	[ "$(db -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = '$1'
	    AND query LIKE '${2:-}%'")" -gt 0 ]
}
sync_standby() {
	db -c "ALTER SYSTEM SET synchronous_standby_names = '$1'" -c 'SELECT pg_reload_conf()' > /dev/null
}

# The connection breaks while the server is still committing: the ids
# are not there yet when counted on the new connection, so the batch
# goes again and meets its own rows. A commit that waits for a
# synchronous standby that never comes holds the first copy there (done
# locally, seen by nobody), and a relay between invgen and the server
# breaks the connection without the server noticing.
@test "regression: a batch sent again meets its own rows still committing: printed once, exit 0" {
	px=$(mktemp -d /tmp/inv-px.XXXXXX)
	sock=${DATABASE_URL#*host=}
	python3 "$ROOT/tests/sockproxy.py" "$px/.s.PGSQL.5432" "${sock%%&*}/.s.PGSQL.5432" 3>&- &
	proxy=$!
	wait_for 10 test -S "$px/.s.PGSQL.5432"
	# a sequence logs ahead: with one value taken now, invgen's ids need
	# no commit of their own, and only its COPY waits for the standby
	db -c "SELECT nextval('invoices_id_seq')" > /dev/null
	sync_standby nobody
	DATABASE_URL="postgresql:///inv?host=$px&user=inv" invgen -r 5 -n 3 > "$T/out" 2> "$T/err" &
	pid=$!
	wait_for 20 pg_waiting SyncRep COPY && kill -USR1 $proxy &&
	    wait_for 20 pg_waiting transactionid
	ok=$?
	sync_standby ''
	rc=0; wait $pid || rc=$?
	kill $proxy; wait $proxy || true
	rm -rf "$px"
	cat "$T/err"
	[ "$ok" -eq 0 ]
	[ "$rc" -eq 0 ]
	[ "$(wc -l < "$T/out")" -eq 3 ]
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 3 ]
	diff <(lines_of "$T/out") <(db_rows)
	grep -q 'cannot insert invoices: server closed the connection' "$T/err"
}

@test "ids up to 2^62 - 1, and a sequence past it: exit 65 with nothing written" {
	db -c "SELECT setval('invoices_id_seq', 4611686018427387901)" > /dev/null
	invgen -q -r 0 -n 2 > "$T/a"
	# (not jq: it reads numbers as doubles)
	[ "$(cut -d, -f1 "$T/a")" = '{"id":4611686018427387902
{"id":4611686018427387903' ]
	# the rows' ids are reserved before they are written: none goes in
	rc=0
	invgen -q -r 0 -n 3 > "$T/b" 2> "$T/e" || rc=$?
	[ "$rc" -eq 65 ]
	[ ! -s "$T/b" ]
	[ "$(wc -l < "$T/e")" -eq 1 ]
	grep -qx "invgen: invoices_id_seq has passed 4611686018427387903, the largest invoice id the programs take (it gave 46116860184273879[0-9]*)" "$T/e"
	rc=0
	invgen -q -r 50 -n 3 > "$T/b" 2> "$T/e" || rc=$?
	[ "$rc" -eq 65 ]
	[ ! -s "$T/b" ]
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 2 ]
}

@test "PostgreSQL that never comes back: exit 69 after --retry-for" {
	pg_down
	run invgen --retry-for 1 -r 0 -n 10
	pg_up
	[ "$status" -eq 69 ]
	[[ "$output" == *"invgen: cannot connect to PostgreSQL"*"giving up"* ]]
}

@test "a database without the invoices table: exit 69 and what to do" {
	db -c 'DROP DATABASE IF EXISTS inv_empty' -c 'CREATE DATABASE inv_empty'
	run invgen --db "${DATABASE_URL/\/inv?//inv_empty?}" -n 1
	[ "$status" -eq 69 ]
	[[ "$output" == *"no invoices table"*"migrate"* ]]
}

@test "without a database it says so once on stderr, and -q silences it" {
	run bash -c 'invgen --no-db -n 2 2>&1 >/dev/null'
	[ "$output" = "invgen: no database (DATABASE_URL unset or --no-db): nothing is persisted, and invoice numbers are unique only within this run" ]
	run bash -c 'invgen -q --no-db -n 2 2>&1 >/dev/null'
	[ -z "$output" ]
	run bash -c 'DATABASE_URL= invgen -n 2 2>/dev/null | wc -l'
	[ "$output" -eq 2 ]
}

@test "--help on stdout exits 0, --version prints the version" {
	run invgen --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: invgen "* ]]
	run invgen --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^invgen\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "bad flags: a clear message, usage, exit 64" {
	for args in "-r abc" "-r -1" "-r 1.2345" "-d 0" "-d x" "-n -5" "-n 1x" \
	    "-s seed" "--start-time yesterday" "--retry-for forever" "-x" \
	    "extra" "--db x --no-db" "-r"; do
		run invgen $args
		echo "args: $args -> $status: $output"
		[ "$status" -eq 64 ]
		[[ "$output" == invgen:* ]]
	done
	run invgen -r abc
	[ "${lines[0]}" = "invgen: bad rate 'abc': expected invoices per second from 0 to 1000000, up to three decimals" ]
}

@test "a malformed DATABASE_URL is a usage error, before anything starts" {
	run env DATABASE_URL='postgresql://[::1' invgen -n 1
	[ "$status" -eq 64 ]
	[[ "$output" == "invgen: bad database URL"* ]]
	run env DATABASE_URL='host=/tmp port=notaport' invgen -n 1
	[ "$status" -ne 0 ]
	[[ "$output" == invgen:* ]]
}

@test "-v on a terminal shows one progress line, and nothing when not a terminal" {
	run bash -c 'invgen -v --no-db -q -r 0 -n 100 2>&1 >/dev/null'
	[ -z "$output" ]
	command -v script >/dev/null || skip "script(1) is not installed"
	script -qec "invgen -v --no-db -q -r 50 -n 30 >/dev/null" /dev/null > "$T/tty"
	grep -q 'invgen: 30/30' "$T/tty"
}
