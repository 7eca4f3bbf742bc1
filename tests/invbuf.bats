#!/usr/bin/env bats
# invbuf: pacing, order, backlog bounds, Redis copy and outages, signals,
# odd lines, usage.

load helper

setup() {
	redis_reset
	T=$BATS_TEST_TMPDIR
	: > "$T/pids"
	set -o pipefail
}

teardown() {
	local p
	for p in $(cat "$T/pids"); do
		kill -9 "$p" 2>/dev/null || true
	done
	redis_restart
	rm -f "$INV_SERVERS_DIR/redis/dump.rdb"
}

# Remember a background process for teardown.
bg() { echo "$1" >> "$T/pids"; }
# has_read PID FILE: PID has read all of FILE on its stdin.
has_read() {
	[ "$(awk '/^pos:/ { print $2 }' "/proc/$1/fdinfo/0")" = "$(stat -c %s "$2")" ]
}
# lines_at_least FILE N
lines_at_least() { [ "$(wc -l < "$1")" -ge "$2" ]; }
# redis_is KEY... VALUE: a Redis command's answer is VALUE
redis_is() { local want=${!#}; [ "$(rcli "${@:1:$#-1}")" = "$want" ]; }
# Restart Redis from inside a test: the daemon must inherit none of
# bats' descriptors (not only fd 3), or bats waits for it forever.
redis_restart() {
	(
		for fd in $(ls /proc/$BASHPID/fd); do
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		redis_up
	)
}
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
count() { wc -l < "$1"; }
# restart_hwm OUT: start invbuf on no input, so it loads what Redis
# holds; once its first line is in OUT, print its peak RSS (kB), stop it.
restart_hwm() {
	invbuf -r 0.1 < /dev/null > "$1" 3>&- &
	local pid=$!
	bg $pid
	wait_for 30 test -s "$1"
	hwm_kb $pid
	kill -TERM $pid
	wait $pid
}
# paced FILE MS: FILE's lines, one every MS milliseconds, unbuffered.
paced() { perl -pe "BEGIN { \$| = 1 } select(undef, undef, undef, $2 / 1000)" "$1"; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# invbuf's own gaps are at least 1/RATE by construction (it takes the
# time after each write returns); the 10 ms of tolerance are for the
# reader, stamp, being scheduled late on a busy shared machine.
@test "order kept, every pair at least 1/RATE apart, everything out after EOF" {
	invgen -q --no-db -r 0 -n 16 > "$T/in"
	for mode in --no-redis ""; do
		redis_reset
		rm -f "$T/ready"
		(wait_for 10 test -e "$T/ready"; cat "$T/in") |
		    invbuf $mode -r 5 | stamp "$T/ready" > "$T/out"
		set -- $(min_gap "$T/out")
		echo "mode '$mode': min gap $1 ms, $2 lines"
		[ "$2" -eq 16 ]
		at_least "$1" 190
		unstamp "$T/out" | cmp - "$T/in"
		# the backlog drained at the rate: 15 gaps of 200 ms
		span=$(( ($(tail -1 "$T/out" | cut -d' ' -f1) - $(head -1 "$T/out" | cut -d' ' -f1)) / 1000000 ))
		[ "$span" -ge 2990 ]
		[ "$span" -lt 6000 ]
	done
}

@test "the default rate is 2 lines a second" {
	seq 1 5 > "$T/in"
	(wait_for 10 test -e "$T/ready"; cat "$T/in") |
	    invbuf --no-redis | stamp "$T/ready" > "$T/out"
	set -- $(min_gap "$T/out")
	echo "min gap $1 ms"
	[ "$2" -eq 5 ]
	at_least "$1" 490
	unstamp "$T/out" | cmp - "$T/in"
}

@test "no burst after an idle spell: 3 lines, a 2 s pause, 5 more" {
	seq 1 8 > "$T/in"
	(wait_for 10 test -e "$T/ready"; head -3 "$T/in"; sleep 2; tail -5 "$T/in") |
	    invbuf -r 5 | stamp "$T/ready" > "$T/out"
	set -- $(min_gap "$T/out")
	echo "min gap $1 ms"
	[ "$2" -eq 8 ]
	at_least "$1" 190
	unstamp "$T/out" | cmp - "$T/in"
}

@test "input is read as it comes: a fast producer is never held up" {
	for mode in --no-redis ""; do
		rm -f "$T/done"
		(invgen -q --no-db -r 0 -n 20000; date +%s > "$T/done") |
		    invbuf $mode -r 2 > "$T/out" 3>&- &
		pid=$!; bg $pid
		# 20,000 lines are far more than a pipe holds
		wait_for 10 test -s "$T/done"
		[ "$(count "$T/out")" -le 3 ]
		kill $pid
		wait $pid
	done
}

@test "input is read while stdout is blocked" {
	invgen -q --no-db -r 0 -n 20000 > "$T/in"
	mkfifo "$T/fifo"
	invbuf --no-redis -r 0 < "$T/in" > "$T/fifo" 3>&- &
	pid=$!; bg $pid
	exec 5< "$T/fifo"	# a reader that reads nothing yet
	wait_for 10 has_read $pid "$T/in"
	cat <&5 > "$T/out"
	exec 5<&-
	wait $pid
	cmp "$T/out" "$T/in"
}

@test "a last line without a newline is still a line" {
	run bash -c "printf 'a\nb' | invbuf --no-redis -r 0 | od -c | head -1"
	[ "$output" = "0000000   a  \n   b  \n" ]
	printf '{"id":1}\n{"id":2}' | invbuf -r 0 > "$T/out"
	[ "$(cat "$T/out")" = '{"id":1}
{"id":2}' ]
	[ "$(tail -c 1 "$T/out" | od -An -c | tr -d ' ')" = '\n' ]
	[ "$(rcli HGET inv:buf displayed)" = 2 ]
}

@test "non-JSON, empty and binary lines pass unchanged" {
	printf '{"id":7,"x":1}\nnot json\n\n\n{broken\na\000b\tc\r\n{"id":8}\n' > "$T/in"
	invbuf --no-redis -r 0 < "$T/in" > "$T/out"
	cmp "$T/out" "$T/in"
	invbuf -r 0 < "$T/in" > "$T/out2"
	cmp "$T/out2" "$T/in"
	# and Redis held them byte for byte
	[ "$(rcli HGET inv:buf displayed)" = 7 ]
}

@test "a line up to --max-line passes whole; a longer one is cut, said once, counted" {
	{
		echo '{"id":1,"x":"json"}'
		echo 'not json'
		head -c 100 /dev/zero | tr '\0' a; echo
		head -c 150 /dev/zero | tr '\0' b; echo
		echo '{"id":2}'
		head -c 250 /dev/zero | tr '\0' c
	} > "$T/in"
	{
		echo '{"id":1,"x":"json"}'
		echo 'not json'
		head -c 100 /dev/zero | tr '\0' a; echo
		head -c 100 /dev/zero | tr '\0' b; echo
		echo '{"id":2}'
		head -c 100 /dev/zero | tr '\0' c; echo
	} > "$T/want"
	for mode in --no-redis ""; do
		redis_reset
		invbuf $mode --max-line 100 -r 0 < "$T/in" > "$T/out" 2> "$T/err"
		cmp "$T/out" "$T/want"
		[ "$(cat "$T/err")" = "invbuf: line 4 is longer than 100 bytes: cut to its first 100 (--max-line)
invbuf: 2 lines were cut to 100 bytes" ]
	done
}

@test "the default line limit is 1 MiB: 900 kB passes through Redis whole, 3 MB is cut" {
	{
		head -c 900000 /dev/zero | tr '\0' x; echo
		head -c 3000000 /dev/zero | tr '\0' y; echo
		echo after
	} > "$T/in"
	invbuf -r 0 < "$T/in" > "$T/out" 2> "$T/err"
	[ "$(awk '{ print length($0) }' "$T/out" | tr '\n' ' ')" = "900000 1048576 5 " ]
	[ "$(tail -1 "$T/out")" = after ]
	grep -q 'line 2 is longer than 1048576 bytes' "$T/err"
}

@test "a 100,000-line backlog without Redis: flat memory, the rest in \$TMPDIR, nothing lost" {
	invgen -q --no-db -r 0 -n 100000 > "$T/in"
	mkdir "$T/tmp"
	TMPDIR=$T/tmp invbuf --no-redis -r 0.1 < "$T/in" > "$T/out" 2> "$T/err" 3>&- &
	pid=$!; bg $pid
	wait_for 30 has_read $pid "$T/in"
	echo "input $(stat -c %s "$T/in") bytes, VmHWM $(hwm_kb $pid) kB"
	under_san || [ "$(hwm_kb $pid)" -lt 16384 ]
	ls -l /proc/$pid/fd | grep -q "$T/tmp/invbuf\..*(deleted)"
	kill -TERM $pid
	wait $pid
	[ "$(cat "$T/err")" = "invbuf: stopped with 99999 lines not shown" ]
	[ "$(cat "$T/out")" = "$(head -1 "$T/in")" ]
	[ -z "$(ls "$T/tmp")" ]
	# the same backlog drained through the spill file, in order, with
	# input still arriving while the file empties and fills again
	invbuf --no-redis -r 0 --mem-lines 100 < "$T/in" | cmp - "$T/in"
	(head -n 30000 "$T/in"; sleep 0.3; tail -n +30001 "$T/in") |
	    invbuf --no-redis -r 0 --mem-lines 1000 --mem-bytes 100000 | cmp - "$T/in"
}

@test "a spill file that cannot be created: said once, the backlog stays in memory, nothing lost" {
	seq 1 5000 > "$T/in"
	TMPDIR=$T/nonexistent invbuf --no-redis -r 0 --mem-lines 10 < "$T/in" > "$T/out" 2> "$T/err"
	cmp "$T/out" "$T/in"
	[ "$(cat "$T/err")" = "invbuf: cannot create a spill file in $T/nonexistent: No such file or directory; the backlog stays in memory until it empties" ]
}

@test "a 100,000-line backlog with Redis: flat memory, all of it in NS:backlog, loaded back on restart" {
	invgen -q --no-db -r 0 -n 100000 > "$T/in"
	invbuf -r 0.1 < "$T/in" > "$T/out" 2> "$T/err" 3>&- &
	pid=$!; bg $pid
	wait_for 60 has_read $pid "$T/in"
	# line 1 shown, line 2 already taken for its turn
	wait_for 10 redis_is LLEN inv:backlog 99998
	[ "$(rcli LINDEX inv:backlog:taken 0)" = "$(sed -n 2p "$T/in")" ]
	echo "VmHWM $(hwm_kb $pid) kB"
	under_san || [ "$(hwm_kb $pid)" -lt 24576 ]
	kill -TERM $pid
	wait $pid
	[ ! -s "$T/err" ]
	[ "$(rcli HGET inv:buf backlog)" = 99999 ]
	[ "$(rcli HGET inv:buf displayed)" = 1 ]
	[ "$(rcli HGET inv:buf last_in)" = 100000 ]
	{ rcli LRANGE inv:backlog:taken 0 -1; rcli LRANGE inv:backlog 0 -1; } |
	    cmp - <(tail -n +2 "$T/in")
	# a restart loads it back, still in bounded memory
	hwm=$(restart_hwm "$T/out2")
	echo "after loading: VmHWM $hwm kB"
	under_san || [ "$hwm" -lt 24576 ]
	[ "$(cat "$T/out2")" = "$(sed -n 2p "$T/in")" ]
	[ "$(rcli LLEN inv:backlog:taken)" = 1 ]
	[ "$(rcli LLEN inv:backlog)" = 99997 ]
}

@test "a backlog of 1 MB lines in Redis: memory stays bounded, also when it is loaded back" {
	python3 -c '
import sys
for i in range(60):
    sys.stdout.write("{\"id\":%d,\"pad\":\"%s\"}\n" % (i + 1, "x" * 1000000))' > "$T/in"
	invbuf -r 0.1 < "$T/in" > "$T/out" 3>&- &
	pid=$!; bg $pid
	wait_for 30 has_read $pid "$T/in"
	wait_for 10 redis_is HGET inv:buf backlog 59
	echo "VmHWM $(hwm_kb $pid) kB"
	under_san || [ "$(hwm_kb $pid)" -lt 32768 ]
	kill -TERM $pid
	wait $pid
	hwm=$(restart_hwm "$T/out2")
	echo "after loading: VmHWM $hwm kB"
	under_san || [ "$hwm" -lt 32768 ]
	invbuf -r 0 < /dev/null | cat "$T/out" "$T/out2" - | cmp - "$T/in"
}

@test "kill -9 and a restart with Redis: nothing lost, nothing shown twice" {
	invgen -q --no-db -r 0 -n 300 > "$T/in"
	invbuf -r 100 < "$T/in" > "$T/out1" 3>&- &
	pid=$!; bg $pid
	wait_for 10 lines_at_least "$T/out1" 50
	kill -9 $pid
	wait $pid || true
	n1=$(count "$T/out1")
	left=$(( $(rcli LLEN inv:backlog) + $(rcli LLEN inv:backlog:taken) ))
	echo "shown $n1, left $left"
	# a line written but not confirmed is still in taken: at most one
	[ $((n1 + left)) -ge 300 ]
	[ $((n1 + left)) -le 301 ]
	# the producer replays from the start: what Redis accepted is dropped
	invbuf -r 0 < "$T/in" > "$T/out2"
	cat "$T/out1" "$T/out2" | uniq | cmp - "$T/in"
	[ $(( n1 + $(count "$T/out2") )) -le 301 ]
	[ "$(rcli LLEN inv:backlog)" = 0 ]
	[ "$(rcli LLEN inv:backlog:taken)" = 0 ]
	[ "$(rcli HGET inv:buf last_out)" = 300 ]
}

@test "a line left in NS:backlog:taken is shown first on start" {
	rcli RPUSH inv:backlog:taken "$(line_of 5 100)" > /dev/null
	rcli RPUSH inv:backlog "$(line_of 6 100)" "$(line_of 7 100)" > /dev/null
	rcli HSET inv:buf last_in 7 last_out 4 displayed 4 > /dev/null
	run invbuf -r 0 < /dev/null
	[ "$status" -eq 0 ]
	[ "$output" = "$(line_of 5 100; line_of 6 100; line_of 7 100)" ]
	[ "$(rcli HGET inv:buf displayed)" = 7 ]
	[ "$(rcli HGET inv:buf last_out)" = 7 ]
	[ "$(rcli LLEN inv:backlog:taken)" = 0 ]
}

@test "dedup: an id not above last_in is dropped; lines without an id pass" {
	for id in 3 6 plain 6 5 8 7; do
		if [ "$id" = plain ]; then echo plain; else line_of "$id" 100; fi
	done > "$T/in"
	rcli HSET inv:buf last_in 5 > /dev/null
	invbuf -r 0 < "$T/in" > "$T/out" 2> "$T/err"
	[ "$(cat "$T/out")" = "$(line_of 6 100; echo plain; line_of 8 100)" ]
	# with Redis the mark may be an earlier stream's: said once, counted
	[ "$(cat "$T/err")" = "invbuf: dropping lines whose id is not above 5, the highest accepted (inv:buf last_in); -v lists them
invbuf: 4 duplicate lines dropped" ]
	[ "$(rcli HGET inv:buf last_in)" = 8 ]
	[ "$(rcli HGET inv:buf displayed)" = 3 ]
	# without Redis the same rule holds within the run; -v says why
	invbuf --no-redis -v -r 0 < "$T/in" > "$T/out" 2> "$T/err"
	[ "$(cat "$T/out")" = "$(line_of 3 100; line_of 6 100; echo plain; line_of 8 100)" ]
	grep -qx 'invbuf: line 4: id 6 is not above 6: dropped as a duplicate' "$T/err"
	grep -qx 'invbuf: 3 duplicate lines dropped' "$T/err"
}

@test "NS:buf hash and channel, NS:display channel" {
	invgen -q --no-db -r 0 -n 10 > "$T/in"
	rcli SUBSCRIBE inv:display inv:buf > "$T/sub" 3>&- &
	bg $!
	wait_for 10 redis_is PUBSUB NUMSUB inv:buf "$(printf 'inv:buf\n1')"
	invbuf -r 50 < "$T/in" > "$T/out"
	wait_for 10 grep -q '"eof":true' "$T/sub"
	awk 'NR % 3 == 1 { k = $0 } NR % 3 == 2 { c = $0 }
	    NR % 3 == 0 && k == "message" && c == "inv:display"' "$T/sub" |
	    cmp - "$T/in"
	awk 'NR % 3 == 1 { k = $0 } NR % 3 == 2 { c = $0 }
	    NR % 3 == 0 && k == "message" && c == "inv:buf"' "$T/sub" > "$T/status"
	cat "$T/status"
	[ "$(tail -1 "$T/status")" = '{"backlog":0,"displayed":10,"eof":true}' ]
	[ "$(grep -cvE '^\{"backlog":[0-9]+,"displayed":[0-9]+,"eof":(true|false)\}$' "$T/status")" -eq 0 ]
	# coalesced: 10 accepted, 10 shown and eof in 0.2 s is a few messages
	[ "$(count "$T/status")" -le 6 ]
	[ "$(rcli HGETALL inv:buf | paste - - | sort | tr '\t\n' '= ')" = "backlog=0 displayed=10 eof=1 last_in=10 last_out=10 " ]
}

@test "Redis emptied or restarted empty while invbuf idles: the backlog is written again" {
	invgen -q --no-db -r 0 -n 5 > "$T/in"
	(cat "$T/in"; sleep 10) | invbuf -r 0.3 > "$T/out" 2> "$T/err" 3>&- &
	pid=$!; bg $pid
	wait_for 10 redis_is HGET inv:buf last_in 5
	# waiting + shown is every line, read in one go on the Redis side
	all="return redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('HGET', KEYS[3], 'displayed')"
	rcli FLUSHALL > /dev/null
	wait_for 10 redis_is HGET inv:buf last_in 5
	[ "$(rcli EVAL "$all" 3 inv:backlog inv:backlog:taken inv:buf)" = 5 ]
	grep -qx 'invbuf: Redis lost its copy of the backlog (inv:buf is gone): writing it again' "$T/err"
	redis_down
	redis_restart
	wait_for 10 redis_is HGET inv:buf last_in 5
	[ "$(rcli EVAL "$all" 3 inv:backlog inv:backlog:taken inv:buf)" = 5 ]
	grep -q '^invbuf: Redis is back' "$T/err"
	kill $pid
	wait $pid
	invbuf -r 0 < /dev/null | cat "$T/out" - | cmp - "$T/in"
}

@test "eof is 1 while the backlog drains, and INV_NAMESPACE moves every key" {
	invgen -q --no-db -r 0 -n 20 > "$T/in"
	INV_NAMESPACE=shop2 invbuf -r 10 < "$T/in" > "$T/out" 3>&- &
	pid=$!; bg $pid
	wait_for 10 redis_is HGET shop2:buf eof 1
	[ "$(rcli HGET shop2:buf backlog)" -gt 5 ]
	wait $pid
	cmp "$T/out" "$T/in"
	[ "$(rcli HGET shop2:buf backlog)" = 0 ]
	[ "$(rcli HGET shop2:buf displayed)" = 20 ]
	[ "$(rcli EXISTS inv:buf inv:backlog)" = 0 ]
}

@test "Redis down mid-stream: the display goes on, nothing lost, Redis caught up" {
	invgen -q --no-db -r 0 -n 400 > "$T/in"
	paced "$T/in" 5 | invbuf -r 100 > "$T/out" 2> "$T/err" 3>&- &
	pid=$!; bg $pid
	sleep 0.7
	redis_down
	sleep 1
	redis_restart
	wait $pid
	cat "$T/err"
	cmp "$T/out" "$T/in"
	[ "$(grep -c 'invbuf: Redis unavailable: ' "$T/err")" -eq 1 ]
	[ "$(grep -c 'invbuf: Redis is back: ' "$T/err")" -eq 1 ]
	[ "$(count "$T/err")" -eq 2 ]
	[ "$(rcli HGETALL inv:buf | paste - - | sort | tr '\t\n' '= ')" = "backlog=0 displayed=400 eof=1 last_in=400 last_out=400 " ]
	run invbuf -r 0 < /dev/null
	[ -z "$output" ]
}

@test "Redis back from an older snapshot: rewritten, nothing shown twice" {
	invgen -q --no-db -r 0 -n 200 > "$T/in"
	paced "$T/in" 5 | invbuf -r 50 > "$T/out" 2> "$T/err" 3>&- &
	pid=$!; bg $pid
	sleep 0.5
	rcli SAVE > /dev/null		# a snapshot of a backlog soon stale
	sleep 1
	redis_down
	redis_restart		# loads that snapshot
	rm -f "$INV_SERVERS_DIR/redis/dump.rdb"
	wait $pid
	cmp "$T/out" "$T/in"
	[ "$(rcli LLEN inv:backlog)" = 0 ]
	[ "$(rcli HGET inv:buf displayed)" = 200 ]
	run invbuf -r 0 < /dev/null
	[ -z "$output" ]
}

@test "Redis unavailable at the start: lines flow, and Redis gets them when it is back" {
	invgen -q --no-db -r 0 -n 100 > "$T/in"
	redis_down
	paced "$T/in" 10 | invbuf -r 100 > "$T/out" 2> "$T/err" 3>&- &
	pid=$!; bg $pid
	sleep 0.5
	redis_restart
	wait $pid
	cat "$T/err"
	cmp "$T/out" "$T/in"
	grep -q '^invbuf: Redis unavailable: cannot connect to Redis: ' "$T/err"
	grep -q '^invbuf: Redis is back: ' "$T/err"
	[ "$(rcli HGET inv:buf displayed)" = 100 ]
	[ "$(rcli HGET inv:buf last_in)" = 100 ]
	# -q keeps quiet about an outage, not about a copy it could not update
	redis_down
	invbuf -q -r 0 < "$T/in" > "$T/out" 2> "$T/err"
	cmp "$T/out" "$T/in"
	[ "$(count "$T/err")" -eq 1 ]
	grep -q '^invbuf: Redis is still unavailable (cannot connect to Redis: .*): its copy of the backlog is out of date$' "$T/err"
}

@test "SIGTERM with Redis: exit 0 at once, the backlog waits in Redis for the next start" {
	invgen -q --no-db -r 0 -n 100 > "$T/in"
	invbuf -r 20 < "$T/in" > "$T/out1" 2> "$T/err" 3>&- &
	pid=$!; bg $pid
	sleep 1
	t=$(date +%s%N)
	kill -TERM $pid
	wait $pid
	[ $(( ($(date +%s%N) - t) / 1000000 )) -lt 1000 ]
	[ ! -s "$T/err" ]
	n1=$(count "$T/out1")
	# the next line is already taken for its turn, the rest wait
	[ "$(rcli LLEN inv:backlog:taken)" -eq 1 ]
	[ "$(rcli LLEN inv:backlog)" -eq $((100 - n1 - 1)) ]
	invbuf -r 0 < /dev/null > "$T/out2"
	cat "$T/out1" "$T/out2" | cmp - "$T/in"
}

@test "SIGINT and SIGTERM without Redis: exit 0, and how many lines were not shown" {
	seq 1 50 > "$T/in"
	for sig in INT TERM; do
		invbuf --no-redis -r 10 < "$T/in" > "$T/out" 2> "$T/err" 3>&- &
		pid=$!; bg $pid
		wait_for 10 lines_at_least "$T/out" 3
		kill -$sig $pid
		wait $pid
		[ "$(cat "$T/err")" = "invbuf: stopped with $((50 - $(count "$T/out"))) lines not shown" ]
	done
}

@test "SIGPIPE: the reader going away ends invbuf quietly; with Redis the line stays in taken" {
	invgen -q --no-db -r 0 -n 1000 > "$T/in"
	run bash -c 'invbuf --no-redis -r 0 < "$1" 2>"$2" | head -1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$T/in" "$T/err"
	[ "$output" = 0 ]
	[ ! -s "$T/err" ]
	run bash -c 'invbuf -r 0 < "$1" 2>"$2" | head -1 >/dev/null; echo "${PIPESTATUS[0]}"' _ "$T/in" "$T/err"
	[ "$output" = 0 ]
	[ ! -s "$T/err" ]
	[ "$(rcli LLEN inv:backlog:taken)" = 1 ]
	taken=$(rcli LINDEX inv:backlog:taken 0)
	shown=$(rcli HGET inv:buf displayed)
	[ $(( shown + 1 + $(rcli LLEN inv:backlog) )) -eq 1000 ]
	# the next start shows it first
	invbuf -r 0 < /dev/null > "$T/out"
	[ "$(head -1 "$T/out")" = "$taken" ]
	[ "$(count "$T/out")" -eq $((1000 - shown)) ]
}

@test "without Redis it is a plain filter: nothing on stderr unless -v" {
	seq 1 3 > "$T/in"
	run bash -c 'REDIS_URL= invbuf -r 0 < "$1" 2>&1 >/dev/null' _ "$T/in"
	[ -z "$output" ]
	run bash -c 'invbuf --no-redis -r 0 < "$1" 2>&1 >/dev/null' _ "$T/in"
	[ -z "$output" ]
	run bash -c 'invbuf --no-redis -v -r 0 < "$1" 2>&1 >/dev/null' _ "$T/in"
	[[ "$output" == "invbuf: no Redis (REDIS_URL unset or --no-redis): the backlog lives in this process"* ]]
	# --redis wins over REDIS_URL, --no-redis over both
	REDIS_URL=http://nowhere invbuf --redis "$REDIS_URL" -r 0 < "$T/in" > /dev/null
	[ "$(rcli HGET inv:buf displayed)" = 3 ]
	REDIS_URL=http://nowhere invbuf --no-redis -r 0 < "$T/in" > /dev/null
}

@test "--help on stdout exits 0, --version prints the version" {
	run invbuf --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: invbuf "* ]]
	run invbuf --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^invbuf\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "bad flags: a clear message, exit 64" {
	for args in "-r abc" "-r -1" "-r 1.2345" "-r 2000000" "-r" "-x" \
	    "extra" "--max-line 0" "--max-line 1k" "--max-line 999999999999" \
	    "--mem-lines 0" "--mem-lines x" "--mem-bytes -1" \
	    "--redis $REDIS_URL --no-redis" "--redis" "--rate=" ; do
		run invbuf $args < /dev/null
		echo "args: $args -> $status: $output"
		[ "$status" -eq 64 ]
		[[ "$output" == invbuf:* ]]
	done
	run invbuf -r abc
	[ "$output" = "invbuf: bad rate 'abc': expected lines per second from 0 to 1000000, up to three decimals" ]
	run invbuf --max-line 0
	[ "$output" = "invbuf: bad line limit '0': too small (1 to 268435456)" ]
}

@test "a malformed Redis URL or namespace: exit 64 before anything starts" {
	for url in http://host redis:// redis://host:99999 redis://host/x \
	    unix://relative/path 'unix:///tmp/s?db=x'; do
		run env REDIS_URL="$url" invbuf -r 0 < /dev/null
		echo "$url -> $status: $output"
		[ "$status" -eq 64 ]
		[[ "$output" == "invbuf: bad Redis URL: "* ]]
		run invbuf --redis "$url" -r 0 < /dev/null
		[ "$status" -eq 64 ]
	done
	run env REDIS_URL=http://host invbuf < /dev/null
	[ "$output" = "invbuf: bad Redis URL: expected redis:// or unix://" ]
	run env INV_NAMESPACE='a b' invbuf -r 0 < /dev/null
	[ "$status" -eq 64 ]
	[ "$output" = "invbuf: bad INV_NAMESPACE 'a b': expected 1 to 64 of A-Z a-z 0-9 _ . -" ]
}

@test "regression: with Redis every accept reply is freed, so memory stays flat over 300,000 lines" {
	command -v /usr/bin/time >/dev/null || skip "GNU time is not installed"
	under_san && skip "memory is not measured under sanitizers"
	redis_reset
	invgen -q --no-db -r 0 -n 20000 > "$T/small"
	invgen -q --no-db -r 0 -n 300000 > "$T/big"
	/usr/bin/time -f %M -o "$T/rss.small" invbuf -q -r 0 < "$T/small" > /dev/null
	redis_reset
	/usr/bin/time -f %M -o "$T/rss.big" invbuf -q -r 0 < "$T/big" > /dev/null
	small=$(tail -1 "$T/rss.small"); big=$(tail -1 "$T/rss.big")
	echo "max RSS: $small KiB for 20,000 lines, $big KiB for 300,000"
	[ $((big - small)) -lt 6000 ]
}
