#!/usr/bin/env bats
# invstats: equality with the database after runs, crashes and outages,
# --resume, show, rebuild, bad lines, signals, usage.

load helper

setup() {
	db_reset
	redis_reset
	T=$BATS_TEST_TMPDIR
	PIDS=
}

teardown() {
	# A stopped Redis must not outlive the test that stopped it.
	[ -f "$INV_SERVERS_DIR/redis.pid" ] &&
	    kill -CONT "$(cat "$INV_SERVERS_DIR/redis.pid")" 2>/dev/null
	redis_up
	for p in $PIDS; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	true
}

same_stats() { [ "$(stats_redis)" = "$(stats_db)" ]; }
has_lines() { [ "$(wc -l < "$2")" -eq "$1" ]; }
@test "after invgen -r 0 -n 5000 | invstats: Redis equals the database to the cent, stdout equals stdin" {
	invgen -r 0 -n 5000 | tee "$T/in" | invstats > "$T/out"
	cmp "$T/in" "$T/out"
	[ "$(wc -l < "$T/out")" -eq 5000 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
	# a second pass over the same lines counts nothing twice
	invstats < "$T/in" > /dev/null
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "show from Redis and from PostgreSQL agree exactly, average half-up" {
	invgen -r 0 -n 3000 | invstats > /dev/null
	run invstats show
	[ "$status" -eq 0 ]
	[ "$output" = "$(json_db redis)" ]
	run invstats -q --no-redis show
	[ "$status" -eq 0 ]
	[ "$output" = "$(json_db postgres)" ]
	# a total whose average ends in half a cent rounds up: (1.15 + 1.16) / 2
	db_reset; redis_reset
	db -c "INSERT INTO invoices (invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount) VALUES
	    ('A-1', now(), 'a', 'b', 1.00, 0.15, 1.15), ('A-2', now(), 'a', 'b', 1.01, 0.15, 1.16)"
	invstats < /dev/null
	[ "$(invstats show)" = '{"count":2,"total_amount":2.31,"vat_amount":0.30,"average_amount":1.16,"source":"redis"}' ]
	[ "$(invstats -q --no-redis show)" = '{"count":2,"total_amount":2.31,"vat_amount":0.30,"average_amount":1.16,"source":"postgres"}' ]
}

@test "show from Redis never maps libpq; the fallback, the filter and rebuild do" {
	invgen -r 0 -n 10 | invstats > /dev/null
	# LD_DEBUG=libs names every library the loader maps, dlopen(3) too
	run env LD_DEBUG=libs invstats show
	[ "$status" -eq 0 ]
	[ "${lines[${#lines[@]} - 1]}" = "$(json_db redis)" ]
	! grep -q 'libpq' <<< "$output"
	LD_DEBUG=libs invstats -q --no-redis show 2> "$T/e" > "$T/o"
	grep -q 'calling init: .*libpq' "$T/e"
	[ "$(cat "$T/o")" = "$(json_db postgres)" ]
	LD_DEBUG=libs invstats -q --no-db < /dev/null 2> "$T/e"
	! grep -q 'libpq' "$T/e"
	LD_DEBUG=libs invstats -q < /dev/null 2> "$T/e"
	grep -q 'calling init: .*libpq' "$T/e"
	# a malformed URL is still a usage error once show needs it
	redis_reset
	run env DATABASE_URL='postgresql://[::1' invstats -q show
	[ "$status" -eq 64 ]
	[[ "$output" == "invstats: bad database URL"* ]]
}

@test "show falls back to PostgreSQL when Redis is down, and says so" {
	invgen -r 0 -n 100 | invstats > /dev/null
	redis_down
	run invstats show
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "invstats: cannot connect to Redis: No such file or directory: computing them from PostgreSQL" ] ||
	    [[ "${lines[0]}" == "invstats: cannot connect to Redis: "*": computing them from PostgreSQL" ]]
	[ "${lines[1]}" = "$(json_db postgres)" ]
	run invstats -q show
	[ "$output" = "$(json_db postgres)" ]
	run invstats -q --no-db show
	[ "$status" -eq 69 ]
	run invstats -q --no-db --no-redis show
	[ "$status" -eq 69 ]
	[ "$output" = "invstats: no statistics without Redis or a database (REDIS_URL, DATABASE_URL)" ]
}

@test "statistics persist across runs and restarts" {
	invgen -r 0 -n 700 | invstats > /dev/null
	invgen -r 0 -n 300 | invstats > /dev/null
	[ "$(rcli HGET inv:stats count)" -eq 1000 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
	# rows committed while no invstats ran are caught up at the next start
	invgen -r 0 -n 250 > /dev/null
	invstats < /dev/null
	[ "$(rcli HGET inv:stats count)" -eq 1250 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "kill -9 of invstats mid-stream, then a restart: Redis equals the database" {
	for round in 1 2 3; do
		mkfifo "$T/p$round"
		invgen -q -r 0 -n 300000 > "$T/p$round" 3>&- &
		gen=$!
		invstats -q < "$T/p$round" > /dev/null 3>&- &
		st=$!
		PIDS="$gen $st"
		sleep 0.$((3 + round * 2))
		kill -9 $st
		wait $gen || true
		# what the killed process left is exact up to its own mark
		last=$(rcli HGET inv:stats last_id)
		n=$(rcli HGET inv:stats count)
		[ "$(stats_redis)" = "$(stats_db "WHERE id <= $last")" ]
		invstats -q < /dev/null
		[ "$(stats_redis)" = "$(stats_db)" ]
	done
	echo "counted before the last restart: $n of $(db -c 'SELECT count(*) FROM invoices')"
}

@test "Redis restarted empty mid-stream: lines keep flowing, said once, caught up" {
	invgen -r 200 -n 1200 2>/dev/null | invstats > "$T/out" 2> "$T/err" 3>&- &
	PIDS=$!
	sleep 1.5
	redis_down
	sleep 1.5
	redis_up
	wait_for 15 has_lines 1200 "$T/out"
	wait $PIDS
	cat "$T/err"
	[ "$(grep -c 'passing lines on' "$T/err")" -eq 1 ]
	grep -q 'invstats: Redis is back' "$T/err"
	[ "$(wc -l < "$T/out")" -eq 1200 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
	[ "$(invstats show)" = "$(json_db redis)" ]
}

@test "a hung Redis (SIGSTOP) does not stop the lines" {
	invgen -r 100 -n 500 2>/dev/null | invstats > "$T/out" 2> "$T/err" 3>&- &
	PIDS=$!
	sleep 1
	kill -STOP "$(cat "$INV_SERVERS_DIR/redis.pid")"
	a=$(wc -l < "$T/out")
	sleep 2.5
	b=$(wc -l < "$T/out")
	kill -CONT "$(cat "$INV_SERVERS_DIR/redis.pid")"
	echo "lines while Redis hung: $a -> $b"
	# 100/s for 2.5 s: at least half of them went through meanwhile
	[ $((b - a)) -ge 125 ]
	wait $PIDS
	[ "$(wc -l < "$T/out")" -eq 500 ]
	wait_for 10 same_stats
}

@test "--resume: rows committed while nobody read them come out once, in order" {
	invgen -r 0 -n 100 | invstats -q --resume > "$T/o1"
	[ "$(wc -l < "$T/o1")" -eq 100 ]
	[ "$(rcli GET inv:fwd)" -eq 100 ]
	# committed, but the lines went nowhere (the pipe broke)
	invgen -r 0 -n 50 > /dev/null
	invgen -r 0 -n 30 | invstats --resume > "$T/o2" 2> "$T/err"
	grep -q 'invstats: re-emitted [0-9]* invoices committed after id 100' "$T/err"
	[ "$(jq .id "$T/o2" | tr '\n' ' ')" = "$(seq 101 180 | tr '\n' ' ')" ]
	[ "$(rcli GET inv:fwd)" -eq 180 ]
	# re-emitted lines are byte for byte what invgen printed
	rcli SET inv:fwd 0 > /dev/null
	invstats -q --resume < /dev/null > "$T/o3"
	cmp <(head -100 "$T/o3") "$T/o1"
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "--resume after kill -9 of the segment: every committed invoice comes out" {
	invstats -q --resume < /dev/null > /dev/null	# first start: NS:fwd = 0
	mkfifo "$T/p"
	invgen -q -r 2000 -n 100000 > "$T/p" 3>&- &
	gen=$!
	invstats -q --resume < "$T/p" > "$T/out" 3>&- &
	st=$!
	PIDS="$gen $st"
	sleep 1.5
	kill -9 $st
	wait $gen || true
	# lines were committed but lost in the pipe: more rows than lines
	[ "$(db -c 'SELECT count(*) FROM invoices')" -gt "$(wc -l < "$T/out")" ]
	invgen -r 0 -n 100 | invstats -q --resume >> "$T/out"
	diff <(jq .id "$T/out" | sort -nu) <(db -c 'SELECT id FROM invoices ORDER BY id')
	# at-least-once: only what NS:fwd had not yet recorded came twice
	[ $(( $(wc -l < "$T/out") - $(jq .id "$T/out" | sort -u | wc -l) )) -lt 2000 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "--resume: a row re-emitted and then read on stdin is written once, still counted" {
	invgen -r 0 -n 9 > "$T/in"
	rcli SET inv:fwd 8 > /dev/null
	invstats -q --resume < "$T/in" > "$T/out"
	cmp "$T/out" <(sed -n 9p "$T/in")
	[ "$(rcli GET inv:fwd)" -eq 9 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
	# lines above the mark on stdin are written, and move it
	invgen -r 0 -n 3 > "$T/in2"
	invstats -q --resume < "$T/in2" > "$T/out2"
	cmp "$T/in2" "$T/out2"
	[ "$(rcli GET inv:fwd)" -eq 12 ]
}

@test "regression: lines lost in the pipe to a killed invbuf are re-emitted from its last_in" {
	# invstats wrote up to 10, invbuf had taken only up to 7
	invgen -r 0 -n 10 > "$T/in"
	rcli SET inv:fwd 10 > /dev/null
	rcli HSET inv:buf last_in 7 > /dev/null
	invstats -v --resume < /dev/null > "$T/out" 2> "$T/err"
	cmp "$T/out" <(sed -n '8,10p' "$T/in")
	grep -q '^invstats: inv:buf last_in 7 is below inv:fwd 10: resuming from it$' "$T/err"
	[ "$(rcli GET inv:fwd)" -eq 10 ]
	# a last_in at or above NS:fwd changes nothing
	rcli HSET inv:buf last_in 12 > /dev/null
	invstats -q --resume < /dev/null > "$T/out"
	[ ! -s "$T/out" ]
}

@test "--resume without a database or Redis: said, then a plain filter" {
	line_of 7 1000 > "$T/in"
	line_of 8 2000 >> "$T/in"
	rcli SET inv:fwd 8 > /dev/null
	run bash -c 'invstats -q --resume --no-db < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 0 ]
	cmp "$T/in" "$T/out"
	[ "$(cat "$T/err")" = "invstats: cannot resume without a database: nothing re-emitted" ]
	run bash -c 'invstats -q --resume --no-redis < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	cmp "$T/in" "$T/out"
	[ "$(cat "$T/err")" = "invstats: cannot resume without Redis: nothing re-emitted" ]
}

@test "--resume on a first start (no NS:fwd) re-emits nothing" {
	invgen -r 0 -n 40 > /dev/null
	invstats -q --resume < /dev/null > "$T/out"
	[ ! -s "$T/out" ]
	[ "$(rcli GET inv:fwd)" -eq 40 ]
}

@test "rejected lines: line number and reason on stderr, not passed on, exit 65" {
	{
		line_of 1 1000
		echo 'not json'
		echo '{"id":3,"invoice_number":"X-3","invoice_date":"2026-12-03T15:00:00Z","seller_name":"a","buyer_name":"b","subtotal":100.00,"vat_amount":15.01,"total_amount":115.01}'
		echo '{"id":4,"invoice_number":"X-4","invoice_date":"2026-12-03T15:00:00Z","seller_name":"a","buyer_name":"b","subtotal":100.00,"vat_amount":15.00,"total_amount":115.10}'
		line_of 5 2000
		echo '{"id":6,"invoice_number":"X-6","invoice_date":"2026-12-03T15:00:00Z","seller_name":"a","buyer_name":"b","subtotal":100.001,"vat_amount":15.00,"total_amount":115.00}'
		echo '{"id":7}'
		echo
		head -c 5000 /dev/zero | tr '\0' x; echo
		line_of 10 3000
	} > "$T/in"
	run bash -c 'invstats --no-db < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 65 ]
	diff "$T/err" - <<-'EOF'
	invstats: no database (DATABASE_URL unset or --no-db): statistics count the lines alone
	invstats: line 2: not a JSON object
	invstats: line 3: vat_amount is not 15% of subtotal
	invstats: line 4: total_amount is not subtotal + vat_amount
	invstats: line 6: subtotal: amount has more than two decimals
	invstats: line 7: missing key invoice_number
	invstats: line 8: empty line
	invstats: line 9: line too long (more than 4096 bytes)
	invstats: 7 lines rejected
	EOF
	diff "$T/out" <(line_of 1 1000; line_of 5 2000; line_of 10 3000)
	[ "$(stats_redis)" = "3 6000 900 6900 10 " ]
}

@test "a huge line without a newline is rejected, never a crash" {
	run bash -c '{ head -c 3000000 /dev/zero | tr "\0" "{"; echo; printf "%s" "$1"; } | invstats -q --no-db --no-redis' _ "$(line_of 2 500)"
	[ "$status" -eq 65 ]
	[ "${lines[0]}" = "invstats: line 1: line too long (more than 4096 bytes)" ]
	[ "${lines[1]}" = "$(line_of 2 500)" ]
	[ "${lines[2]}" = "invstats: 1 line rejected" ]
}

@test "without a database: counts in Redis from the lines alone" {
	invgen -q --no-db -r 0 -n 2000 > "$T/in"
	invstats -q --no-db < "$T/in" > "$T/out"
	cmp "$T/in" "$T/out"
	want=$(awk '{
		match($0, /"subtotal":[0-9.]+/); s = substr($0, RSTART + 11, RLENGTH - 11)
		match($0, /"vat_amount":[0-9.]+/); v = substr($0, RSTART + 13, RLENGTH - 13)
		match($0, /"total_amount":[0-9.]+/); t = substr($0, RSTART + 15, RLENGTH - 15)
		gsub(/\./, "", s); gsub(/\./, "", v); gsub(/\./, "", t)
		S += s; V += v; T += t; n++
	} END { printf "%d %d %d %d %d \n", n, S, V, T, n }' "$T/in")
	[ "$(stats_redis)" = "$want" ]
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 0 ]
}

@test "without Redis: a plain validating filter; without either too" {
	invgen -r 0 -n 500 > "$T/in"
	run bash -c 'invstats --no-redis < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 0 ]
	cmp "$T/in" "$T/out"
	[ "$(cat "$T/err")" = "invstats: no Redis (REDIS_URL unset or --no-redis): lines are checked and passed on, nothing is counted" ]
	[ "$(rcli EXISTS inv:stats)" -eq 0 ]
	run bash -c 'REDIS_URL= DATABASE_URL= invstats -q < "$1" > "$2"' _ "$T/in" "$T/out2"
	[ "$status" -eq 0 ]
	cmp "$T/in" "$T/out2"
	[ "$(invstats -q --no-redis show)" = "$(json_db postgres)" ]
}

@test "Redis down from the start: lines pass, counted when it is back next time" {
	redis_down
	invgen -r 0 -n 300 | invstats > "$T/out" 2> "$T/err"
	[ "$(wc -l < "$T/out")" -eq 300 ]
	[ "$(grep -c 'passing lines on' "$T/err")" -eq 1 ]
	redis_up
	invstats -q < /dev/null
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "a stats event on NS:stats for every burst, as show prints it" {
	timeout 20 redis-cli -s "$REDIS_SOCK" SUBSCRIBE inv:stats > "$T/sub" 3>&- &
	PIDS=$!
	wait_for 5 grep -q subscribe "$T/sub"
	invgen -r 50 -n 40 | invstats > /dev/null
	wait_for 5 grep -q '"count":40,' "$T/sub"
	[ "$(grep '^{' "$T/sub" | tail -1)" = "$(invstats show)" ]
	# coalesced: far fewer events than invoices would be at -r 0
	invgen -r 0 -n 20000 | invstats > /dev/null
	wait_for 5 grep -q '"count":20040,' "$T/sub"
	[ "$(grep -c '^{' "$T/sub")" -lt 1000 ]
}

@test "rebuild: atomically from PostgreSQL, over a wrong hash, and after a truncate" {
	invgen -r 0 -n 800 | invstats > /dev/null
	rcli HSET inv:stats count 1 total 5 > /dev/null
	invstats rebuild
	[ "$(stats_redis)" = "$(stats_db)" ]
	[ -z "$(rcli KEYS 'inv:stats:rebuild*')" ]
	# Redis ahead of the database (the table was truncated): a start rebuilds
	db_reset
	invgen -r 0 -n 10 | invstats -q > /dev/null
	[ "$(stats_redis)" = "$(stats_db)" ]
	run invstats --no-db rebuild
	[ "$status" -eq 69 ]
	[ "$output" = "invstats: rebuild needs a database (DATABASE_URL or --db)" ]
}

@test "regression: a rebuild never shows a partial hash, only the old count or the new" {
	# under FLOOR_LAG_IDS rows, all newer than the aggregate's mark: a
	# rebuild that put up the aggregate first showed count 0, then
	# 10000, 20000, ... while it counted the rest
	db -c "INSERT INTO invoices (invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount)
	    SELECT 'R-' || i, now(), 'a', 'b', s, round(s * 0.15, 2), s + round(s * 0.15, 2)
	    FROM generate_series(1, 40000) i, LATERAL (SELECT (i % 997 + 100) / 100.0 AS s) x"
	invstats rebuild
	[ "$(stats_redis)" = "$(stats_db)" ]
	rcli HSET inv:stats count 7 > /dev/null
	# one connection reading the count as fast as Redis answers
	rcli -r 100000000 -i 0 HGET inv:stats count > "$T/seen" 3>&- &
	PIDS=$!
	wait_for 10 test -s "$T/seen"
	invstats rebuild
	sleep 0.2
	kill $PIDS
	wait $PIDS || true
	[ "$(stats_redis)" = "$(stats_db)" ]
	[ "$(head -1 "$T/seen")" = 7 ]
	[ "$(tail -1 "$T/seen")" = 40000 ]
	# nothing but the old and the new count, each in one run
	[ "$(uniq "$T/seen" | tr '\n' ' ')" = "7 40000 " ]
	# the keys built aside are gone, and what took their place keeps
	[ -z "$(rcli --scan --pattern 'inv:stats:rebuild:*')" ]
	[ "$(rcli TTL inv:stats)" -eq -1 ]
}

@test "regression: a set of counted ids with the ids as scores, as 0.1.0 wrote it, is rebuilt, not counted again" {
	# RESTART IDENTITY: ids 1 to 100
	invgen -q -r 0 -n 100 > "$T/in"
	invstats -q < "$T/in" > /dev/null
	same_stats
	# the floor at 40 and ids 41 to 100 counted above it, each its own
	# score, where the set now holds them padded with score 0
	rcli HSET inv:stats floor 40 > /dev/null
	rcli DEL inv:stats:ids > /dev/null
	rcli ZADD inv:stats:ids $(seq 41 100 | sed 's/.*/& &/') > /dev/null
	# the lines above the floor again, from a pipe held open: none of
	# them is counted twice, not even in the stats event that follows
	# them within 50 ms, before the settle a second on would find the
	# set too large (a line at or below the floor brings it forward)
	tail -n 60 "$T/in" > "$T/above"
	grep -q '^{"id":41,' "$T/above"
	timeout 20 redis-cli -s "$REDIS_SOCK" SUBSCRIBE inv:stats > "$T/sub" 3>&- &
	PIDS=$!
	wait_for 5 grep -q subscribe "$T/sub"
	mkfifo "$T/fifo"
	invstats < "$T/fifo" > /dev/null 2> "$T/err" &
	s=$!
	PIDS="$PIDS $s"
	exec 7> "$T/fifo"
	cat "$T/above" >&7
	sleep 2.5
	exec 7>&-
	wait $s
	grep -qx 'invstats: statistics rebuilt from PostgreSQL: 100 invoices' "$T/err"
	grep -q '"count":100,' "$T/sub"
	[ "$(grep '^{' "$T/sub" | grep -vc '"count":100,')" -eq 0 ]
	[ "$(rcli HGET inv:stats count)" -eq 100 ]
	same_stats
	[ "$(rcli ZCOUNT inv:stats:ids '(0' +inf)" -eq 0 ]
}

@test "a row below the mark that the hash never counted: the next start rebuilds" {
	invgen -r 0 -n 100 | invstats -q > /dev/null
	# as if a second invgen committed id 50 after id 100 was counted
	db -c "DELETE FROM invoices WHERE id = 50"
	redis-cli -s "$REDIS_SOCK" HINCRBY inv:stats count -1 > /dev/null
	db -c "INSERT INTO invoices (id, invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount)
	    VALUES (50, 'LATE-50', now(), 'a', 'b', 10.00, 1.50, 11.50)"
	invstats -q < /dev/null
	[ "$(stats_redis)" = "$(stats_db)" ]
	db -c "DELETE FROM invoices WHERE id = 60"
	invstats -q < /dev/null
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "two invgen | invstats pipelines on one database and namespace: exact to the cent" {
	# their rows commit interleaved, so each filter sees ids below the
	# other's highest; every row is counted once, by one or the other
	invgen -q -r 400 -n 1200 | invstats > "$T/a" &
	a=$!
	invgen -q -r 400 -n 1200 | invstats > "$T/b" &
	b=$!
	PIDS="$a $b"
	wait $a
	wait $b
	has_lines 1200 "$T/a"
	has_lines 1200 "$T/b"
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 2400 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
	[ "$(invstats show)" = "$(json_db redis)" ]
}

@test "one invstats on the merged output of two invgen: exact to the cent" {
	# Two writers at the same rate print nearly in id order, and at a
	# steady phase exactly so (each reserves its id just before it
	# prints): the second writer's lines come late instead, once the
	# first has printed ids above all of them, one write a line
	last_id() { tail -n 1 "$1" | cut -d, -f1 | cut -d: -f2; }
	above() { [ "$(last_id "$1")" -gt "$2" ] 2>/dev/null; }
	{
		invgen -q -r 100 -n 600 | tee "$T/a" &
		{
			sleep 0.5
			invgen -q -r 0 -n 300 > "$T/b"
			wait_for 30 above "$T/a" "$(last_id "$T/b")"
			while IFS= read -r l; do printf '%s\n' "$l"; done < "$T/b"
		} &
		wait
	} | invstats > "$T/out"
	has_lines 900 "$T/out"
	sort "$T/out" | cmp - <(cat "$T/a" "$T/b" | sort)
	# the lines really interleave: ids do not come in order
	[ "$(jq .id "$T/out" | sort -n | cmp - <(jq .id "$T/out") && echo sorted)" != sorted ]
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 900 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "a row that commits below the floor while the filter runs is counted by the end" {
	# an id reserved now and committed seconds later, after the floor
	# has risen past it, as a stalled second writer would
	late=$(db -c "SELECT nextval('invoices_id_seq')")
	invgen -q -r 50 -n 300 | invstats > /dev/null &
	PIDS=$!
	wait_for 20 sh -c '[ "$(redis-cli -s "$1" HGET inv:stats floor)" -gt "$2" ]' _ "$REDIS_SOCK" "$late"
	db -c "INSERT INTO invoices (id, invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount)
	    VALUES ($late, 'LATE-$late', now(), 'a', 'b', 10.00, 1.50, 11.50)"
	wait $PIDS
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 301 ]
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "regression: the line of a row committed below the floor, once idle, is counted at once" {
	# the floor has passed a reserved id and every row above it is
	# counted, so nothing is due to settle; then the row commits and its
	# line comes: it must not wait for the end of input
	late=$(db -c "SELECT nextval('invoices_id_seq')")
	mkfifo "$T/in"
	invstats < "$T/in" > /dev/null &
	PIDS=$!
	exec 7> "$T/in"
	invgen -q -r 0 -n 200 >&7
	wait_for 20 sh -c '[ "$(redis-cli -s "$1" HGET inv:stats floor)" -gt "$2" ]' _ "$REDIS_SOCK" "$late"
	db -c "INSERT INTO invoices (id, invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount)
	    VALUES ($late, 'LATE-$late', now(), 'a', 'b', 10.00, 1.50, 11.50)"
	line_of "$late" 1000 >&7
	wait_for 10 same_stats
	exec 7>&-
	wait $PIDS
	[ "$(rcli HGET inv:stats count)" -eq 201 ]
}

@test "after a rebuild, a row committed late just below the highest id is counted, no second rebuild" {
	late=$(db -c "SELECT nextval('invoices_id_seq')")
	invgen -q -r 0 -n 100 | invstats -q > /dev/null
	# the rebuilt floor stays below the newest ids, which it counts one
	# by one, so a writer still committing among them is not missed
	invstats rebuild
	[ "$(rcli HGET inv:stats floor)" -lt "$late" ]
	db -c "INSERT INTO invoices (id, invoice_number, invoice_date, seller_name, buyer_name, subtotal, vat_amount, total_amount)
	    VALUES ($late, 'LATE-$late', now(), 'a', 'b', 10.00, 1.50, 11.50)"
	invstats < /dev/null 2> "$T/err"
	[ ! -s "$T/err" ]
	[ "$(stats_redis)" = "$(stats_db)" ]
}

@test "the set of ids above the floor stays small: the floor follows the rows" {
	invgen -q -r 0 -n 20000 | invstats > /dev/null
	invgen -q -r 100 -n 500 | invstats > /dev/null
	[ "$(stats_redis)" = "$(stats_db)" ]
	# at most the rows of the last few seconds are held one by one
	[ "$(rcli ZCARD inv:stats:ids)" -le 500 ]
	[ "$(rcli HGET inv:stats floor)" -ge 20000 ]
}

@test "INV_NAMESPACE keeps two stacks apart" {
	invgen -r 0 -n 30 | INV_NAMESPACE=other invstats > /dev/null
	[ "$(rcli HGET other:stats count)" -eq 30 ]
	[ "$(rcli EXISTS inv:stats)" -eq 0 ]
}

@test "SIGTERM: the current line is finished, exit 0" {
	mkfifo "$T/p"
	invgen -q -r 100 -n 5000 > "$T/p" 3>&- &
	gen=$!
	invstats -q < "$T/p" > "$T/out" 2> "$T/err" 3>&- &
	pid=$!
	PIDS="$gen $pid"
	sleep 1
	kill -TERM $pid
	rc=0; wait $pid || rc=$?
	[ "$rc" -eq 0 ]
	[ ! -s "$T/err" ]
	n=$(wc -l < "$T/out")
	[ "$n" -gt 10 ]
	[ "$(jq -c . "$T/out" | wc -l)" -eq "$n" ]
	[ "$(rcli HGET inv:stats count)" -ge "$n" ]
}

@test "SIGPIPE: the reader going away ends invstats quietly" {
	run bash -c 'invgen -q --no-db -r 0 -n 200000 | invstats -q --no-db --no-redis 2>"$1" | head -1 >/dev/null; echo "${PIPESTATUS[1]}"' _ "$T/err"
	[ "$output" = 0 ]
	[ ! -s "$T/err" ]
}

@test "--help on stdout exits 0, --version prints the version" {
	run invstats --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: invstats "* ]]
	run invstats --version
	[ "$status" -eq 0 ]
	[ "$output" = "invstats 0.1.0" ]
}

@test "bad flags: a clear message, usage, exit 64" {
	for args in "-x" "--bogus" "--db" "--redis" "--db x --no-db" \
	    "--redis unix:///x --no-redis" "frob" "show extra" "--resume show" \
	    "--resume rebuild" "-q=1"; do
		run invstats $args
		echo "args: $args -> $status: $output"
		[ "$status" -eq 64 ]
		[[ "$output" == invstats:* ]]
	done
	run invstats frob
	[ "${lines[0]}" = "invstats: unknown command 'frob'" ]
	[[ "${lines[1]}" == "usage: invstats "* ]]
}

@test "malformed DATABASE_URL, REDIS_URL or INV_NAMESPACE: exit 64 before anything" {
	run env DATABASE_URL='postgresql://[::1' invstats show
	[ "$status" -eq 64 ]
	[[ "$output" == "invstats: bad database URL"* ]]
	run env REDIS_URL='http://localhost' invstats show
	[ "$status" -eq 64 ]
	[ "$output" = "invstats: bad Redis URL: expected redis:// or unix://" ]
	run invstats --redis 'redis://host:99999' < /dev/null
	[ "$status" -eq 64 ]
	[ "$output" = "invstats: bad Redis URL: port is not a number from 1 to 65535" ]
	run env INV_NAMESPACE='a b' invstats < /dev/null
	[ "$status" -eq 64 ]
}

@test "ids past 2^53: a line seen again after the floor rose is still counted once" {
	# Lua numbers and sorted-set scores are doubles: past 2^56 they step
	# by 16, so an id just above the floor rounds to or below it. The
	# first batch ends on 2^56 + 1601, one above a multiple of 16.
	db -c "SELECT setval('invoices_id_seq', 72057594037929237)" > /dev/null
	mkfifo "$T/in"
	invstats -q < "$T/in" > /dev/null &
	PIDS=$!
	exec 7> "$T/in"
	invgen -q -r 0 -n 300 >&7
	max=$(db -c 'SELECT max(id) FROM invoices')
	[ "$max" = 72057594037929537 ]
	wait_for 10 same_stats
	# the floor rises to $max at the first settle two seconds on
	sleep 2.5
	invgen -q -r 0 -n 1 > "$T/x"
	# (not jq: it reads numbers as doubles)
	grep -q '^{"id":72057594037929538,' "$T/x"
	cat "$T/x" >&7
	wait_for 20 sh -c '[ "$(redis-cli -s "$1" HGET inv:stats floor)" = "$2" ]' _ "$REDIS_SOCK" "$max"
	cat "$T/x" >&7
	sleep 1.5
	[ "$(rcli HGET inv:stats count)" -eq 301 ]
	exec 7>&-
	wait $PIDS
	[ "$(rcli HGET inv:stats count)" -eq 301 ]
	same_stats
}
