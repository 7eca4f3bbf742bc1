#!/usr/bin/env bats
# valgrind (memcheck) over a short full cycle against the real
# PostgreSQL and Redis: invgen --wait | invstats | invbuf into a FIFO,
# invserve reading it with an SSE client connected, invctl starting the
# cycle; every program under memcheck. An invalid read or write, a use
# of uninitialised memory or a definite leak makes valgrind exit 99.

load helper

setup_file() { sse_install; }

setup() {
	under_san && skip "valgrind cannot run sanitized programs"
	command -v valgrind >/dev/null || skip "valgrind is not installed"
	db_reset
	db -c 'TRUNCATE generation_cycles'
	redis_reset
	T=$BATS_TEST_TMPDIR
	PIDS=
	# "${VG[@]}" PROG ARGS...: PROG under memcheck, its report (empty
	# when all is well) in $T/vg.PID; an array, so $! is PROG's pid
	VG=(valgrind -q --error-exitcode=99 --leak-check=full
	    --errors-for-leak-kinds=definite --show-leak-kinds=definite
	    --log-file="$T/vg.%p")
}

teardown() { stop_pids; }

state_is() { [ "$(invctl status | jq -r .state)" = "$1" ]; }
ids_of() { awk -F '\t' '$1 == "invoice" { print $2 }' "$1"; }
last_is() { [ "$(ids_of "$1" | tail -1)" = "$2" ]; }

# stopped PID NAME: PID ended with exit 0; else its valgrind report
stopped() {
	local rc=0
	wait "$1" || rc=$?
	if [ $rc -ne 0 ]; then
		echo "$2 exited with $rc:"
		cat "$T"/vg.* "$T/$2.err"
		return 1
	fi
}

@test "a cycle through the whole stack under memcheck: no invalid access, no definite leak" {
	FIFO=$T/display.fifo
	mkfifo "$FIFO" "$T/g2s" "$T/s2b"
	"${VG[@]}" invserve -v -l 127.0.0.1:0 -i "$FIFO" --max-clients 100 \
	    2> "$T/invserve.err" 3>&- &
	SERVE=$!
	PIDS="$PIDS $SERVE"
	wait_for 120 grep -q 'listening on' "$T/invserve.err"
	URL=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$T/invserve.err" | head -1)
	wait_for 60 curl -sf "$URL/healthz" -o /dev/null

	ready=$T/ready
	node "$ROOT/tests/sse-client.js" "$URL/events" --out "$T/c" --until 40 \
	    --timeout 300 --ready "$ready" 3>&- &
	CLIENT=$!
	PIDS="$PIDS $CLIENT"
	wait_for 60 test -e "$ready"

	"${VG[@]}" invgen --wait > "$T/g2s" 2> "$T/invgen.err" 3>&- &
	GEN=$!
	"${VG[@]}" invstats < "$T/g2s" > "$T/s2b" 2> "$T/invstats.err" 3>&- &
	STATS=$!
	"${VG[@]}" invbuf -r 20 < "$T/s2b" > "$FIFO" 2> "$T/invbuf.err" 3>&- &
	BUF=$!
	PIDS="$PIDS $GEN $STATS $BUF"

	run "${VG[@]}" invctl start -r 20 -d 2
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r .target)" -eq 40 ]
	wait "$CLIENT"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seq -s ' ' 1 40) " ]
	wait_for 120 state_is idle
	[ "$(db -c 'SELECT count(*) FROM invoices')" -eq 40 ]
	[ "$(rcli HGET inv:stats count)" -eq 40 ]
	[ "$(rcli HGET inv:stats total)" = "$(db -c 'SELECT (sum(total_amount) * 100)::bigint FROM invoices')" ]
	run "${VG[@]}" invctl status
	[ "$status" -eq 0 ]
	run curl -sf "$URL/api/invoices?limit=5"
	[ "$(echo "$output" | jq -r '.[].id' | tr '\n' ' ')" = "40 39 38 37 36 " ]

	# the producer ends from its head: SIGTERM, then EOF down the pipe
	kill -TERM "$GEN"
	stopped "$GEN" invgen
	stopped "$STATS" invstats
	stopped "$BUF" invbuf
	kill -TERM "$SERVE"
	stopped "$SERVE" invserve
	# and valgrind said nothing at all
	cat "$T"/vg.* > "$T/all"
	[ ! -s "$T/all" ] || { cat "$T/all"; false; }
}

@test "regression: each program alone, without PostgreSQL or Redis, under memcheck" {
	# invbuf without Redis lost its check timer at every exit
	"${VG[@]}" invgen --no-db -q -r 0 -n 200 -s 7 > "$T/in"
	[ "$(wc -l < "$T/in")" -eq 200 ]
	"${VG[@]}" invstats --no-db --no-redis -q < "$T/in" > "$T/s"
	cmp "$T/in" "$T/s"
	"${VG[@]}" invbuf --no-redis -q -r 0 < "$T/s" > "$T/b"
	cmp "$T/in" "$T/b"
	cat "$T/in" | "${VG[@]}" invbuf --no-redis -q -r 0 > "$T/b2"
	cmp "$T/in" "$T/b2"
	cat "$T"/vg.* > "$T/all"
	[ ! -s "$T/all" ] || { cat "$T/all"; false; }
}
