#!/usr/bin/env bats
# Faults, combined, on the whole stack as invctl up runs it (display at
# 20/s) against the real servers: kill -9 at random moments, Redis and
# PostgreSQL going away mid-cycle, the FIFO's reader or writer gone, a
# full disk under invbuf's spill file, invserve out of descriptors. The
# single faults are in up.bats, invstats.bats and invserve.bats; here
# they meet a running cycle, and afterwards the guarantees must hold:
# the database holds exactly the cycle's count, a browser-side
# EventSource saw every invoice once and in order, the statistics equal
# the database.

load helper

setup_file() { sse_install; }

setup() {
	stack_setup
	PIDS=
}

teardown() {
	local p
	# nothing stopped may outlive its test
	[ -n "$UP" ] && kill -CONT "$UP" 2>/dev/null
	[ -f "$INV_SERVERS_DIR/redis.pid" ] &&
	    kill -CONT "$(cat "$INV_SERVERS_DIR/redis.pid")" 2>/dev/null
	redis_up > /dev/null 2>&1 || true
	pg_up > /dev/null 2>&1 || true
	rm -f "$INV_SERVERS_DIR/redis/dump.rdb"
	stack_down
	for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if mountpoint -q "$T/small" 2>/dev/null; then umount "$T/small"; fi
	true
}

# Invoices the EventSource has received so far.
shown() { awk -F '\t' '$1 == "invoice"' "$T/sse" | wc -l; }
rows_over() { [ "$(rows)" -gt "$1" ]; }
shown_over() { [ "$(shown)" -gt "$1" ]; }
code_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL$1"; }
code_is() { [ "$(code_of "$1")" = "$2" ]; }
source_is() {
	[ "$(invstats show | jq -r .source)" = "$1" ] &&
	    [ "$(curl -s --max-time 5 "$URL/api/stats" | jq -r .source)" = "$1" ]
}
# Redis shut down keeping its data (the restart loads the dump).
redis_down_saving() { rcli SHUTDOWN SAVE > /dev/null 2>&1 || true; }

@test "kill -9 of each program at random moments of two cycles: nothing lost, nothing twice" {
	local seed=${INV_FAULT_SEED:-$(( $(date +%s%N) / 1000 % 32768 ))}
	local progs=(invgen invstats invbuf invserve) cycle k i j tmp p pid delay
	echo "# kill schedule seed $seed (replay: INV_FAULT_SEED=$seed)" >&3
	echo "seed $seed"
	RANDOM=$seed
	up
	watch
	for cycle in 1 2; do
		invctl start -r 50 -d 6 > /dev/null
		# each program once per cycle, in a random order, at random moments
		for ((i = 3; i > 0; i--)); do
			j=$((RANDOM % (i + 1)))
			tmp=${progs[i]}; progs[i]=${progs[j]}; progs[j]=$tmp
		done
		for p in "${progs[@]}"; do
			delay=$((RANDOM % 30 + 3))
			sleep "$((delay / 10)).$((delay % 10))"
			wait_for 30 child "$p" > /dev/null
			pid=$(child "$p")
			echo "cycle $cycle: +$((delay / 10)).$((delay % 10))s kill -9 $p ($pid), $(rows) rows, $(shown) shown"
			kill -9 "$pid"
		done
		wait_for 120 state_is idle
		sleep 1
		check_guarantees $((cycle * 300))
	done
	for p in invgen invstats invbuf invserve; do
		[ "$(grep -c "^invctl: $p died of signal 9; restarting" "$T/up.err")" -ge 2 ]
	done
}

# alive PIDS...: one of them still runs (a zombie does not).
alive() {
	local p st
	for p in "$@"; do
		st=$(ps -o stat= -p "$p") && [[ $st != Z* ]] && return 0
	done
	return 1
}

@test "kill -9 of invctl up mid-cycle: its children go with it, and the next up finishes the cycle" {
	up
	watch
	invctl start -r 50 -d 8 > /dev/null
	wait_for 20 shown_over 20
	local kids=$(pgrep -P "$UP")
	[ "$(echo "$kids" | wc -w)" -eq 4 ]
	kill -9 "$UP"
	wait "$UP" 2>/dev/null || true
	wait_for 15 eval '! alive $kids'
	invctl up --rundir "$RUN" --display-rate 20 -l "127.0.0.1:$PORT" \
	    > "$T/up2.out" 2> "$T/up2.err" 3>&- &
	UP=$!
	wait_for 15 curl -sf "$URL/healthz" -o /dev/null
	wait_for 120 state_is idle
	sleep 1
	check_guarantees 400
}

# redis_outage saving|empty: Redis goes away for 5 s mid-cycle, then
# comes back with its data or without it.
redis_outage() {
	up
	watch
	invctl start -r 50 -d 12 > /dev/null
	wait_for 20 rows_over 100
	if [ "$1" = saving ]; then redis_down_saving; else redis_down; fi
	local n=$(rows) s=$(shown)
	wait_for 10 source_is postgres
	[ "$(invstats show | jq .count)" -ge "$n" ]
	sleep 4
	# generation and display went on without Redis
	rows_over $((n + 100))
	shown_over $((s + 40))
	source_is postgres
	[ "$(code_of /healthz)" = 200 ]
	redis_up
	# the state is back (or put back) while the cycle runs
	wait_for 15 state_is running
	wait_for 15 source_is redis
	wait_for 120 state_is idle
	sleep 1
	check_guarantees 600
	[ "$(invctl status | jq -r '.generated, .displayed, .backlog' | tr '\n' ' ')" = "600 600 0 " ]
}

@test "Redis stopped for 5 s mid-cycle and back with its data: generation and display go on, stats from PostgreSQL meanwhile" {
	redis_outage saving
}

@test "Redis restarted empty mid-cycle: the state is put back, stats rebuilt, nothing lost" {
	redis_outage empty
}

@test "PostgreSQL stopped for 5 s mid-cycle: invgen retries, /healthz and the API say 503, the cycle ends exact" {
	up
	watch
	invctl start -r 50 -d 10 > /dev/null
	wait_for 20 rows_over 100
	pg_down
	local s=$(shown)
	wait_for 10 code_is /healthz 503
	[ "$(curl -s "$URL/healthz")" = '{"postgres":"down","redis":"ok"}' ]
	[ "$(code_of '/api/invoices?limit=5')" = 503 ]
	sleep 4
	# the backlog is still shown while nothing new can be committed
	shown_over "$s"
	pg_up
	wait_for 30 code_is /healthz 200
	[ "$(code_of '/api/invoices?limit=5')" = 200 ]
	wait_for 120 state_is idle
	sleep 1
	check_guarantees 500
	grep -q '^invgen: .*; retrying$' "$T/up.err"
	grep -q '^invgen: connected to PostgreSQL again$' "$T/up.err"
	[ "$(db -c 'SELECT count(DISTINCT invoice_number) FROM invoices')" -eq 500 ]
}

@test "the FIFO's reader gone for 4 s (invserve killed, the supervisor stopped): nothing lost" {
	up
	watch
	invctl start -r 50 -d 8 > /dev/null
	wait_for 20 shown_over 20
	kill -STOP "$UP"
	local server=$(child invserve)
	kill -9 "$server"
	sleep 4
	kill -CONT "$UP"
	wait_for 20 child invserve > /dev/null
	[ "$(child invserve)" != "$server" ]
	wait_for 120 state_is idle
	sleep 1
	check_guarantees 400
	grep -q '^invctl: invserve died of signal 9; restarting' "$T/up.err"
	# invbuf lost its reader: it ends quietly, and the segment restarts
	grep -q '^invctl: invbuf exited with status 0; restarting' "$T/up.err"
}

@test "the FIFO's writer gone for 4 s (invbuf killed, the supervisor stopped): invserve carries on, nothing lost" {
	up
	watch
	invctl start -r 50 -d 8 > /dev/null
	wait_for 20 shown_over 20
	local server=$(child invserve)
	kill -STOP "$UP"
	kill -9 "$(child invbuf)"
	sleep 4
	[ "$(code_of /healthz)" = 200 ]
	kill -CONT "$UP"
	wait_for 120 state_is idle
	sleep 1
	check_guarantees 400
	# the server never noticed
	[ "$(child invserve)" = "$server" ]
	! grep -q '^invserve: .*\(input\|FIFO\|fifo\)' "$T/up.err"
}

@test "the spill file's disk full: said, the backlog goes on in memory, the next backlog tries the file again" {
	[ "$(id -u)" = 0 ] || skip "mounting a small tmpfs needs root"
	mkdir "$T/small"
	mount -t tmpfs -o size=256k tmpfs "$T/small"
	# two backlogs of 5000 lines (1.2 MB each), the first shown in full
	# before the second comes
	invgen -q --no-db -r 0 -n 10000 > "$T/in"
	(head -n 5000 "$T/in"; sleep 3; tail -n +5001 "$T/in") |
	    TMPDIR=$T/small invbuf -r 5000 --mem-lines 100 > "$T/out" 2> "$T/err"
	cmp "$T/out" "$T/in"
	local msg="invbuf: cannot write a spill file in $T/small: No space left on device; the backlog stays in memory until it empties"
	[ "$(cat "$T/err")" = "$msg"$'\n'"$msg" ]
	[ "$(rcli HGET inv:buf displayed)" = 10000 ]
	[ "$(rcli LLEN inv:backlog)" = 0 ]
	# and the file system has its space back
	[ "$(df --output=used -k "$T/small" | tail -1 | tr -d ' ')" -lt 16 ]
}

@test "invserve out of descriptors: accept pauses, says so once, and resumes; SSE clients keep receiving" {
	local drop=
	[ "$(id -u)" = 0 ] && drop="setpriv --bounding-set -sys_resource"
	mkfifo "$T/fifo"
	$drop bash -c "ulimit -n 300 && exec invserve -v -l 127.0.0.1:0 -i '$T/fifo' --backfill 0" \
	    2> "$T/serve.err" 3>&- &
	PIDS="$PIDS $!"
	wait_for 10 grep -q 'listening on' "$T/serve.err"
	URL=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$T/serve.err" | head -1)
	node "$ROOT/tests/sse-client.js" "$URL/events" --out "$T/sse" \
	    --timeout 60 --until 20 3>&- &
	CLIENT=$!
	wait_for 10 grep -q '^open' "$T/sse"
	# 400 idle connections: more than the descriptors left
	python3 -c '
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = [socket.create_connection((host, port)) for _ in range(400)]
open(sys.argv[3], "w").close()
time.sleep(4)
' 127.0.0.1 "${URL##*:}" "$T/held" 3>&- &
	local hold=$!
	wait_for 10 test -e "$T/held"
	wait_for 5 grep -q 'cannot accept' "$T/serve.err"
	# a new request waits; the streaming client does not
	run curl -s --max-time 1 "$URL/healthz"
	[ "$status" -eq 28 ]
	invgen -q -r 0 -n 10 > "$T/fifo"
	wait_for 10 sh -c "[ \$(grep -c '^invoice' '$T/sse') -eq 10 ]"
	wait "$hold"
	# the descriptors are back: accepted again
	wait_for 15 curl -sf --max-time 2 "$URL/healthz" -o /dev/null
	invgen -q -r 0 -n 10 > "$T/fifo"
	wait "$CLIENT"
	CLIENT=
	[ "$(awk -F '\t' '$1 == "invoice" { print $2 }' "$T/sse" | tr '\n' ' ')" = "$(seq -s ' ' 1 20) " ]
	wait_for 5 grep -q '^invserve: accepting connections again' "$T/serve.err"
	cat "$T/serve.err"
	[ "$(grep -c 'cannot accept' "$T/serve.err")" -eq 1 ]
	grep -q '^invserve: cannot accept: Too many open files; pausing until a descriptor is free$' "$T/serve.err"
	[ "$(curl -s "$URL/metrics" | awk '$1 == "invserve_accept_pauses_total" { print $2 }')" -ge 1 ]
	kill -0 "${PIDS##* }"
}
