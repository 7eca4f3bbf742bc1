#!/usr/bin/env bats
# invctl up: the whole stack under supervision. Whatever dies, when the
# cycle and the backlog are done: the database holds exactly the cycle's
# target, a browser-side EventSource saw every invoice exactly once and
# in order, and the statistics equal the database.

load helper

setup_file() { sse_install; }

setup() { stack_setup; }

teardown() { stack_down; }

@test "a whole cycle: idle, running, draining, idle; every invoice shown once" {
	up
	watch
	invctl status -w > "$T/states" 3>&- &
	W=$!
	[ "$(state)" = idle ]
	invctl start -r 50 -d 4 >/dev/null
	wait_for 60 state_is idle
	sleep 1
	kill $W
	jq -r .state "$T/states" | uniq | tr '\n' ' ' > "$T/seq"
	echo "states: $(cat "$T/seq")"
	[ "$(cat "$T/seq")" = "idle running draining idle " ]
	check_guarantees 200
	[ "$(invctl status | jq -r '.generated, .displayed, .backlog' | tr '\n' ' ')" = "200 200 0 " ]
}

@test "STOP mid-cycle: nothing generated after the acknowledgement, the backlog shown in full" {
	up
	watch
	invctl start -r 50 -d 20 >/dev/null
	sleep 2
	invctl stop >/dev/null
	wait_for 5 sh -c '! invctl status | grep -q "\"state\":\"stopping\""'
	n=$(rows)
	[ "$n" -gt 20 ]
	[ "$n" -lt 1000 ]
	run state
	[ "$output" = draining ]
	[ "$(invctl status | jq .backlog)" -gt 0 ]
	wait_for 60 state_is idle
	sleep 1
	[ "$(rows)" -eq "$n" ]
	check_guarantees "$n"
}

@test "START while draining starts the next cycle; both are shown in full" {
	up
	watch
	invctl start -r 50 -d 2 >/dev/null
	wait_for 10 state_is draining
	run invctl start -r 50 -d 1
	[ "$status" -eq 0 ]
	wait_for 60 state_is idle
	sleep 1
	check_guarantees 150
	[ "$(db -c 'SELECT count(*) FROM generation_cycles')" -eq 2 ]
}

@test "kill -9 of each child mid-cycle loses nothing and shows nothing twice" {
	up
	watch
	invctl start -r 50 -d 6 >/dev/null
	for p in invgen invstats invbuf invserve; do
		sleep 1.5
		pid=$(child $p)
		[ -n "$pid" ]
		kill -9 "$pid"
		wait_for 15 sh -c "pgrep -P $UP -x $p > /dev/null"
	done
	wait_for 90 state_is idle
	sleep 2
	check_guarantees 300
	grep -q 'invserve died of signal 9; restarting' "$T/up.err"
	grep -q 'invgen died of signal 9; restarting' "$T/up.err"
}

@test "two up on one run directory: the second is refused" {
	up
	run invctl up --rundir "$RUN" -l 127.0.0.1:1
	[ "$status" -eq 75 ]
	[ "$output" = "invctl: already running as pid $UP on $RUN" ]
}

@test "invctl down stops the stack; it exits 0 and leaves no child" {
	up
	kids=$(pgrep -P "$UP" | wc -l)
	[ "$kids" -eq 4 ]
	run invctl down --rundir "$RUN"
	[ "$status" -eq 0 ]
	wait "$UP"
	UP=
	[ ! -e "$RUN/invctl.pid" ]
	run invctl down --rundir "$RUN"
	[ "$status" -eq 1 ]
	[[ "$output" == "invctl: nothing to stop: "* ]]
}

@test "each child's stderr comes through led by its name" {
	up
	invctl start -r 50 -d 1 >/dev/null
	kill -9 "$(child invstats)"
	wait_for 10 grep -q '^invctl: invstats died of signal 9; restarting' "$T/up.err"
	run grep -v -E '^(invctl|invgen|invstats|invbuf|invserve): ' "$T/up.err"
	[ -z "$output" ]
}
