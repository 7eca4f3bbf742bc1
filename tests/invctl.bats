#!/usr/bin/env bats
# invctl start/stop/status and invgen --wait: the state machine, cycles,
# resuming after a crash.

load helper

setup() {
	db_reset
	db -c 'TRUNCATE generation_cycles'
	redis_reset
	T=$BATS_TEST_TMPDIR
}

teardown() {
	[ -n "${GEN:-}" ] && kill -9 $GEN 2>/dev/null || true
	[ -n "${WATCH:-}" ] && kill $WATCH 2>/dev/null || true
	true
}

state() { invctl status | jq -r .state; }
state_is() { [ "$(state)" = "$1" ]; }
cycle_done() { [ "$(db -c 'SELECT sum(generated) FROM generation_cycles')" = "$1" ]; }
rows() { db -c 'SELECT count(*) FROM invoices'; }
start_gen() { invgen --wait > "$T/gen.out" 2> "$T/gen.err" 3>&- & GEN=$!; }

@test "a fresh stack is idle, and status is one JSON object" {
	run invctl status
	[ "$status" -eq 0 ]
	[ "$output" = '{"state":"idle","generated":0,"target":0,"backlog":0,"displayed":0,"cycle":0,"rate":0,"duration":0,"since":null}' ]
}

@test "invgen --wait generates nothing before START" {
	start_gen
	sleep 1.5
	[ "$(rows)" -eq 0 ]
	[ ! -s "$T/gen.out" ]
	[ "$(state)" = idle ]
}

@test "a whole cycle: running, then draining, then idle, with exactly the target" {
	start_gen
	invctl status -w > "$T/watch" 3>&- &
	WATCH=$!
	wait_for 5 test -s "$T/watch"
	run invctl start -r 50 -d 2
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r '.state, .target, .cycle, .rate, .duration' | tr '\n' ' ')" = "running 100 1 50 2 " ]
	wait_for 10 state_is idle
	[ "$(rows)" -eq 100 ]
	[ "$(wc -l < "$T/gen.out")" -eq 100 ]
	diff <(lines_of "$T/gen.out") <(db_rows)
	[ "$(db -c 'SELECT generated, target FROM generation_cycles')" = "100|100" ]
	sleep 0.3
	# the watch saw the states in order, one line per change
	jq -r .state "$T/watch" | uniq > "$T/states"
	[ "$(head -1 "$T/states")" = idle ]
	grep -qx running "$T/states"
	[ "$(tail -1 "$T/states")" = idle ]
	run awk '/running/ { r = NR } /draining|idle/ && r && !d { d = NR } END { exit !(r && d > r) }' "$T/states"
	[ "$status" -eq 0 ]
	[ "$(jq -r .generated "$T/watch" | sort -n | tail -1)" -eq 100 ]
}

@test "START is refused while running, STOP while idle: exit 1 and why" {
	run invctl stop
	[ "$status" -eq 1 ]
	[ "$output" = "invctl: cannot stop: the state is idle (STOP is accepted while running)" ]
	invctl start -r 1 -d 100 >/dev/null
	run invctl start
	[ "$status" -eq 1 ]
	[ "$output" = "invctl: cannot start: the state is running (START is accepted when idle or draining)" ]
	[ "$(invctl status | jq -r .cycle)" -eq 1 ]
}

@test "STOP mid-cycle: nothing is generated once the stop is acknowledged" {
	start_gen
	invctl start -r 20 -d 30 >/dev/null
	sleep 1.5
	invctl stop >/dev/null
	wait_for 5 sh -c '[ "$(invctl status | jq -r .state)" != stopping ]'
	[ "$(state)" != running ]
	n=$(rows)
	[ "$n" -gt 10 ]
	[ "$n" -lt 600 ]
	sleep 1.5
	[ "$(rows)" -eq "$n" ]
	[ "$(wc -l < "$T/gen.out")" -eq "$n" ]
	[ "$(db -c 'SELECT generated FROM generation_cycles')" -eq "$n" ]
}

@test "START while draining begins the next cycle" {
	# a display that still has a backlog keeps the stack draining
	rcli HSET inv:buf backlog 5 last_out 0 >/dev/null
	start_gen
	invctl start -r 50 -d 1 >/dev/null
	wait_for 10 state_is draining
	sleep 0.5
	[ "$(state)" = draining ]
	run invctl start -r 50 -d 1
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r .cycle)" -eq 2 ]
	rcli HSET inv:buf backlog 0 last_out 999999 >/dev/null
	wait_for 10 state_is idle
	[ "$(rows)" -eq 100 ]
}

@test "a generator killed mid-cycle resumes it: exactly the target, no number twice" {
	start_gen
	invctl start -r 40 -d 3 >/dev/null
	sleep 1
	kill -9 $GEN
	sleep 0.7
	invgen --wait > "$T/gen2.out" 2> "$T/gen2.err" 3>&- &
	GEN=$!
	wait_for 15 state_is idle
	[ "$(rows)" -eq 120 ]
	[ "$(db -c 'SELECT count(DISTINCT invoice_number) FROM invoices')" -eq 120 ]
	grep -q 'resuming cycle 1 at invoice' "$T/gen2.err"
}

@test "Redis restarted empty mid-cycle: the generator restores the state and finishes" {
	start_gen
	invctl start -r 40 -d 3 >/dev/null
	sleep 1
	redis_down
	sleep 0.5
	redis_up
	wait_for 15 cycle_done 120
	wait_for 5 state_is idle
	[ "$(rows)" -eq 120 ]
	grep -q 'restored cycle 1' "$T/gen.err"
}

@test "SIGTERM ends invgen --wait with exit 0" {
	start_gen
	sleep 0.3
	kill -TERM $GEN
	wait $GEN
}

@test "usage errors exit 64 with a message" {
	run invctl
	[ "$status" -eq 64 ]
	run invctl frobnicate
	[ "$status" -eq 64 ]
	[ "${lines[0]}" = "invctl: unknown command 'frobnicate'" ]
	for args in "start -r x" "start -r 0" "start -d 0" "start extra" "stop now" "status -x" "up --display-rate 0"; do
		run invctl $args
		echo "$args -> $status $output"
		[ "$status" -eq 64 ]
	done
	run env -u REDIS_URL invctl status
	[ "$status" -eq 64 ]
	[ "$output" = "invctl: no Redis: set REDIS_URL or --redis" ]
	run env REDIS_URL=http://x invctl status
	[ "$status" -eq 64 ]
	[ "$output" = "invctl: bad Redis URL: expected redis:// or unix://" ]
	run env -u REDIS_URL invgen --wait
	[ "$status" -eq 64 ]
	[ "$output" = "invgen: --wait takes its orders from Redis: set REDIS_URL or --redis" ]
	run invctl --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: invctl start"* ]]
	run invctl --version
	[[ "$output" =~ ^invctl\ [0-9.]+$ ]]
}

@test "Redis down: status exits 69 and says why" {
	run invctl --help
	run env REDIS_URL="unix://$T/nothing.sock" invctl status
	[ "$status" -eq 69 ]
	[[ "$output" == "invctl: cannot connect to Redis: "* ]]
}
