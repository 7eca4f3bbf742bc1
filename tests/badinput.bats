#!/usr/bin/env bats
# Bad input of every kind: a corpus of bad NDJSON lines (tests/data/bad.ndjson,
# the reason for each in tests/data/bad.reasons) through invstats, invserve
# and invbuf; huge lines and CRLF; malformed flags and environment; HTTP
# abuse against invserve while an EventSource client keeps receiving;
# SQL injection through every API parameter.

load helper
load sse

setup_file() { sse_install; }

setup() {
	sse_setup
	BAD=$ROOT/tests/data/bad.ndjson
	REASONS=$ROOT/tests/data/bad.reasons
	NBAD=$(wc -l < "$REASONS")
}

teardown() { stop_pids; }

# gen N [RATE]: N invoices into PostgreSQL and the FIFO.
gen() { invgen -q -r "${2:-0}" -n "$1" > "$FIFO"; }
metric() { curl -s "$URL/metrics" | awk -v m="invserve_$1" '$1 == m { print $2 }'; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
seqids() { seq -s ' ' "$1" "$2"; }

# good N: N good invoice lines, ids 1..N, subtotal 10.00 + id cents.
good() {
	local k
	for k in $(seq 1 "$1"); do line_of "$k" $((1000 + k)); done
}
# mixed GOOD BAD: a good line before each bad one, so bad line k of the
# corpus is line 2k of the input (NUL bytes and all: python, not bash).
mixed() {
	python3 -c '
import sys
good = open(sys.argv[1], "rb").read().split(b"\n")
bad = open(sys.argv[2], "rb").read().split(b"\n")[:-1]
sys.stdout.buffer.write(b"".join(g + b"\n" + b + b"\n" for g, b in zip(good, bad)))' "$1" "$2"
}
# sums N: "count subtotal vat total last_id " of good N, in cents.
sums() {
	local k s v S=0 V=0
	for k in $(seq 1 "$1"); do
		s=$((1000 + k)); v=$(( (s * 15 + 50) / 100 ))
		S=$((S + s)); V=$((V + v))
	done
	echo "$1 $S $V $((S + V)) $1 "
}
rows() { db -c 'SELECT count(*) FROM invoices'; }
invoice_data() { awk -F '\t' '$1 == "invoice" { print $3 }' "$1"; }

@test "the corpus through invstats: each bad line by number and reason, the good ones counted, exit 65" {
	good "$NBAD" > "$T/good"
	mixed "$T/good" "$BAD" > "$T/in"
	run bash -c 'invstats -q --no-db < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 65 ]
	diff "$T/err" <(awk '{ printf "invstats: line %d: %s\n", 2 * NR, $0 }' "$REASONS"
	    echo "invstats: $NBAD lines rejected")
	cmp "$T/out" "$T/good"
	[ "$(stats_redis)" = "$(sums "$NBAD")" ]
	# the bad lines alone: every one rejected, nothing passed on
	run bash -c 'invstats -q --no-db --no-redis < "$1" 2>/dev/null' _ "$BAD"
	[ "$status" -eq 65 ]
	[ -z "$output" ]
}

@test "the corpus through invserve: each bad line reported and counted in /metrics, every good one streamed in order" {
	good "$NBAD" > "$T/good"
	mixed "$T/good" "$BAD" > "$T/in"
	serve --backfill 0
	client "$URL/events" --out "$T/c" --until "$NBAD"
	cat "$T/in" > "$FIFO"
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 1 "$NBAD") " ]
	diff <(invoice_data "$T/c") "$T/good"
	wait_for 5 metric_is input_lines_total $((2 * NBAD))
	[ "$(metric input_bad_lines_total)" -eq "$NBAD" ]
	diff <(grep 'not an invoice' "$SERVE_ERR") \
	    <(awk '{ printf "invserve: input line %d: not an invoice: %s\n", 2 * NR, $0 }' "$REASONS")
	# and it still serves
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]
}

@test "the corpus through invbuf: every line passed on unchanged, with and without Redis" {
	# (a bad line that starts {"id":900, once made the good lines after
	# it look like duplicates, and dropped them)
	good "$NBAD" > "$T/good"
	mixed "$T/good" "$BAD" > "$T/in"
	run bash -c 'invbuf --no-redis -r 0 < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 0 ]
	cmp "$T/out" "$T/in"
	[ ! -s "$T/err" ]
	run bash -c 'invbuf -r 0 < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 0 ]
	cmp "$T/out" "$T/in"
	[ ! -s "$T/err" ]
	[ "$(rcli HGET inv:buf displayed)" = $((2 * NBAD)) ]
}

@test "a 10 MB line and a 5,000-byte invoice: rejected by invstats and invserve, cut by invbuf, the next lines go on" {
	{
		line_of 1 1001
		printf '{"id":2,"pad":"'; head -c 10000000 /dev/zero | tr '\0' x; echo '"}'
		line_of 3 1003
		# a valid invoice but for its length: 5,000 spaces inside
		line_of 4 1004 | sed "s/^{/{$(printf '%5000s' '')/"
		line_of 5 1005
	} > "$T/in"
	{ line_of 1 1001; line_of 3 1003; line_of 5 1005; } > "$T/good"
	[ "$(sed -n 4p "$T/in" | wc -c)" -gt 5000 ]
	run bash -c 'invstats -q --no-db < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 65 ]
	cmp "$T/out" "$T/good"
	[ "$(cat "$T/err")" = "invstats: line 2: line too long (more than 4096 bytes)
invstats: line 4: line too long (more than 4096 bytes)
invstats: 2 lines rejected" ]
	[ "$(rcli HGET inv:stats count)" = 3 ]

	invbuf -r 0 < "$T/in" > "$T/out" 2> "$T/err"
	[ "$(awk '{ print length($0) }' "$T/out" | tr '\n' ' ')" = "$(awk '{ print length($0) }' "$T/in" | sed 2s/.*/1048576/ | tr '\n' ' ')" ]
	cmp <(sed -n '1p; 3,5p' "$T/out") <(sed -n '1p; 3,5p' "$T/in")
	[ "$(cat "$T/err")" = "invbuf: line 2 is longer than 1048576 bytes: cut to its first 1048576 (--max-line)" ]

	redis_reset	# invbuf's last_out would be recovered from as shown
	serve --backfill 0
	client "$URL/events" --out "$T/c" --until 5
	cat "$T/in" > "$FIFO"
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "1 3 5 " ]
	wait_for 5 metric_is input_bad_lines_total 2
	[ "$(metric input_lines_total)" -eq 5 ]
	[ "$(grep -c 'not an invoice: line too long (more than 4096 bytes)$' "$SERVE_ERR")" -eq 2 ]
	grep -qx 'invserve: input line 4: not an invoice: line too long (more than 4096 bytes)' "$SERVE_ERR"
}

@test "CRLF line ends are tolerated: invstats passes the lines as they came, invserve drops the CR, invbuf passes them" {
	invgen -q -r 0 -n 20 > "$T/lf"
	# every other line CRLF, as a file edited on another system may be
	awk 'NR % 2 { printf "%s\r\n", $0; next } { print }' "$T/lf" > "$T/in"
	[ "$(grep -c $'\r$' "$T/in")" -eq 10 ]
	run bash -c 'invstats -q < "$1" 2>"$2" >"$3"' _ "$T/in" "$T/err" "$T/out"
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]
	cmp "$T/out" "$T/in"
	[ "$(rcli HGET inv:stats count)" = 20 ]
	[ "$(invstats show)" = "$(invstats -q --no-redis show | sed 's/postgres/redis/')" ]

	invbuf -r 0 < "$T/in" > "$T/out" 2> "$T/err"
	cmp "$T/out" "$T/in"
	[ ! -s "$T/err" ]

	redis_reset	# invbuf's last_out would be recovered from as shown
	serve --backfill 0
	client "$URL/events" --out "$T/c" --until 20
	cat "$T/in" > "$FIFO"
	wait "$CLIENT_PID"
	diff <(invoice_data "$T/c") "$T/lf"
	[ "$(metric input_bad_lines_total)" -eq 0 ]
	# a CR anywhere else in the line is white space inside the JSON
	line_of 21 2100 | sed 's/,"seller_name"/,\r"seller_name"/' > "$FIFO"
	wait_for 5 metric_is last_id 21
	[ "$(metric input_bad_lines_total)" -eq 0 ]
}

# not_started PROGRAM ARGS...: run it with the environment of the test
# (env VAR=...); it must exit 64 with one line "PROGRAM: ..." and leave
# no row, no Redis key, no FIFO and no run directory behind.
not_started() {
	rm -rf "$T/rundir" "$T/f"
	run timeout 20 "$@"
	echo "$* -> $status: $output"
	[ "$status" -eq 64 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" =~ ^(invgen|invstats|invbuf|invserve|invctl):\ bad\  ]]
	[[ "$output" != *s3cret* ]]
	[ "$(rows)" -eq 0 ]
	[ "$(rcli DBSIZE)" -eq 0 ]
	[ ! -e "$T/f" ]
	[ ! -e "$T/rundir" ]
}
# Each program that takes the variable, as the stack runs it.
programs() {
	case $1 in
	DATABASE_URL)
		echo "invgen -n 3"
		echo "invgen --wait"
		echo "invstats"
		echo "invstats show"
		echo "invserve -v -l 127.0.0.1:0 -i $T/f"
		echo "invctl up --rundir $T/rundir" ;;
	REDIS_URL | INV_NAMESPACE)
		echo "invgen --wait"
		echo "invstats"
		echo "invbuf -r 0"
		echo "invserve -v -l 127.0.0.1:0 -i $T/f"
		echo "invctl status"
		echo "invctl start"
		echo "invctl stop"
		echo "invctl up --rundir $T/rundir" ;;
	INV_LISTEN)
		echo "invserve -v -i $T/f"
		echo "invctl up --rundir $T/rundir" ;;
	esac
}

@test "a malformed DATABASE_URL: program: bad database URL: why, exit 64, no row, nothing started" {
	for url in 'postgresql://[::1' 'garbage' 'host=/tmp port=abc' \
	    'postgresql://inv:s3cret@localhost:99999/inv' 'postgresql://localhost:0/inv' \
	    'postgresql:///inv?connect_timeout=soon' 'postgresql:///inv?sslmode=sometimes' \
	    'postgresql:///inv?keepalives_idle=-1'; do
		while read -r prog; do
			not_started env DATABASE_URL="$url" $prog < /dev/null
			[[ "${lines[0]}" == "${prog%% *}: bad database URL: "* ]]
		done < <(programs DATABASE_URL)
	done
	# the same through --db
	not_started invgen -n 3 --db 'host=/tmp port=abc'
	[ "$output" = "invgen: bad database URL: port is not a number from 1 to 65535" ]
	not_started invserve -l 127.0.0.1:0 -i "$T/f" --db 'postgresql:///inv?connect_timeout=x'
	[ "$output" = "invserve: bad database URL: connect_timeout is not a whole number" ]
}

@test "a malformed REDIS_URL or INV_NAMESPACE: exit 64 before any Redis key, socket or FIFO" {
	for url in 'http://localhost' 'redis://' 'redis://localhost:0' \
	    'redis://:s3cret@localhost:99999' 'redis://localhost/x' \
	    'unix://relative/path' "unix://$REDIS_SOCK?db=x"; do
		while read -r prog; do
			not_started env REDIS_URL="$url" $prog < /dev/null
			[[ "${lines[0]}" == "${prog%% *}: bad Redis URL: "* ]]
		done < <(programs REDIS_URL)
	done
	for ns in 'a b' 'a:b' 'inv*' "$(printf '%065d' 0)" 'é'; do
		while read -r prog; do
			not_started env INV_NAMESPACE="$ns" $prog < /dev/null
			[ "${lines[0]}" = "${prog%% *}: bad INV_NAMESPACE '$ns': expected 1 to 64 of A-Z a-z 0-9 _ . -" ]
		done < <(programs INV_NAMESPACE)
	done
}

@test "a malformed INV_LISTEN or -l: exit 64, no listening socket, no FIFO" {
	for addr in nope 127.0.0.1 127.0.0.1:99999 127.0.0.1:-1 127.0.0.1:80x \
	    '[::1' 999.1.1.1:80 ':8080' '127.0.0.1: 80'; do
		while read -r prog; do
			not_started env INV_LISTEN="$addr" $prog < /dev/null
			[ "${lines[0]}" = "${prog%% *}: bad listen address '$addr': expected ADDR:PORT, such as 127.0.0.1:8080 or [::1]:8080" ]
		done < <(programs INV_LISTEN)
		not_started invserve -v -l "$addr" -i "$T/f"
		not_started invctl up --rundir "$T/rundir" -l "$addr"
	done
	# the flag wins over the variable
	INV_LISTEN=nope invserve -v -l 127.0.0.1:0 -i "$T/f" 2> "$T/err" 3>&- &
	PIDS=$!
	wait_for 10 grep -q 'listening on' "$T/err"
}

@test "a malformed INV_DISPLAY_RATE or --display-rate: invctl up exits 64 before the run directory" {
	for rate in x 0 -1 1.2345 '' ' 2' 2s 10000000; do
		[ -n "$rate" ] || continue
		not_started env INV_DISPLAY_RATE="$rate" invctl up --rundir "$T/rundir"
		[ "$output" = "invctl: bad INV_DISPLAY_RATE '$rate': expected lines per second above 0, up to three decimals" ]
		not_started invctl up --rundir "$T/rundir" --display-rate "$rate"
		[ "$output" = "invctl: bad display rate '$rate': expected lines per second above 0, up to three decimals" ]
	done
}

@test "regression: a number with leading white space or '+' is refused" {
	for args in "-n| 5" "-n|+5" "-r| 5" "-d|+1" "-s|+7"; do
		run invgen -q --no-db "${args%|*}" "${args#*|}"
		echo "invgen $args -> $status: $output"
		[ "$status" -eq 64 ]
		[[ "$output" == invgen:* ]]
	done
	run invserve -l 127.0.0.1:0 -i "$T/f" --backfill ' 3'
	[ "$status" -eq 64 ]
	run invserve -l '127.0.0.1:+80' -i "$T/f"
	[ "$status" -eq 64 ]
	[ ! -e "$T/f" ]
}

@test "HTTP abuse (slowloris on first and keep-alive requests, huge headers and request lines, pipelining, garbage, traversal, CSRF, wrong methods, smuggling): answered, and the stream never stalls" {
	mkdir -p "$T/www/sub"
	echo '<p>hello' > "$T/www/index.html"
	echo 'secret' > "$T/outside"
	ln -s "$T/outside" "$T/www/link"
	ln -s ../../outside "$T/www/sub/link"
	serve --www "$T/www" --backfill 0
	client "$URL/events" --out "$T/c" --times "$T/times" --until 600 --timeout 120
	# 600 invoices at 20/s: 30 s, longer than the abuse takes
	gen 600 20 &
	G=$!
	wait_for 30 test -s "$T/times"
	t0=$(date +%s%3N)
	python3 "$ROOT/tests/abuse.py" "$PORT" > "$T/abuse"
	t1=$(date +%s%3N)
	cat "$T/abuse"
	wait "$G"
	wait "$CLIENT_PID"
	diff "$T/abuse" - <<-'EOF'
	slowloris 200x1000
	slowloris-overstay 408x50 within 14-25 s
	keepalive-overstay 200,408x20 within 14-25 s
	keepalive-idle quietx20 within 8-20 s
	sends-on-after-431 431,closedx5 within 4-12 s
	headers-9k-60k-64k-1m-many-lines 431 431 431 431 431 431
	keepalive-second-64k-1m-line1m 200,431 200,431 200,414
	pipelined 200x300
	request-line-1m-5k 414 414
	garbage 400x10000
	traversal 400 400 400 400 400 400 400 400 400 400 400 400 400 400 404 404 404 404 404 404 400 400 400
	methods 405 405 405 405 405 405 405 405 405 405 405 501 501 501
	csrf 403x14
	smuggling 400 400 400 200,200
	EOF
	# every invoice, in order, once
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 1 600) " ]
	# never a stall: at 20/s the gaps are 50 ms; allow 2 s on a busy machine
	gap=$(awk 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { print m + 0 }' "$T/times")
	during=$(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 <= b' "$T/times" | wc -l)
	echo "# abuse took $((t1 - t0)) ms; $during invoices arrived meanwhile; longest gap $gap ms" >&3
	[ "$gap" -lt 2000 ]
	[ "$during" -ge $(( (t1 - t0) / 50 / 2 )) ]
	# nothing was started by the refused POSTs, and the server is whole
	[ -z "$(rcli HGET inv:control state)" ]
	[ "$(curl -s -w '%{http_code}' "$URL/healthz")" = '{"postgres":"ok","redis":"ok"}
200' ]
	[ "$(curl -s "$URL/")" = '<p>hello' ]
	[ "$(metric 'http_errors_total{code="403"}')" -eq 14 ]
	[ "$(metric 'http_errors_total{code="405"}')" -eq 11 ]
	# the 408s (50 first requests, 20 second ones), the 414s (the 5 KiB
	# target, the two 1 MiB request lines cut off unparsed) and the 431s
	# (the 9 KiB header, the 12 heads cut off past 16 KiB or 100 lines);
	# evhttp's own 400s never reach invserve
	[ "$(metric 'http_errors_total{code="other"}')" -eq 86 ]
	[ "$(metric 'http_errors_total{code="400"}')" -eq 18 ]
	# every connection closed with a request begun that no handler saw:
	# the garbage, TRACE, CONNECT and BREW, chunked beside a length and
	# chunked twice (evhttp's own 400 and 501), the 70 that overstayed,
	# the 14 heads cut off, and the request pipelined behind the doubled
	# Content-Length (its connection closed with the 400); not the 20
	# idle keep-alive connections
	wait_for 5 metric_is http_no_request_total 10090
}

@test "a client that sends on while it does not read a long answer: invserve reads no more than 64 KiB ahead of it" {
	mkdir -p "$T/www"
	head -c 50000000 /dev/zero > "$T/www/big.bin"
	serve --www "$T/www" --backfill 0
	before=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVE_PID/status")
	# 50 MB asked for and not read, and up to 100 MiB sent behind it;
	# the server's size taken while the connection is still open
	python3 - "$PORT" "$SERVE_PID" > "$T/sent" <<-'EOF'
	import re, socket, sys
	s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
	s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
	s.sendall(b'GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
	s.settimeout(2)
	sent = 0
	try:
	    while sent < 100 << 20:
	        sent += s.send(b'x' * 65536)
	except socket.timeout:
	    pass
	status = open('/proc/%s/status' % sys.argv[2]).read()
	print(sent >> 20, re.search(r'VmRSS:\s*(\d+)', status)[1])
	EOF
	read -r sent after < "$T/sent"
	echo "# sent $sent MiB before the server stopped reading; RSS $before -> $after kB" >&3
	# the kernel's buffers hold a few MiB; invserve itself took no more
	[ "$sent" -lt 32 ]
	[ $((after - before)) -lt 16384 ]
	# and the server is whole
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]
}

@test "SQL injection through every API parameter: a 400 with a JSON error, the table intact" {
	serve --backfill 0
	gen 20
	wait_for 5 metric_is last_id 20
	db_rows > "$T/before"
	code_json() {
		# the answer must be one JSON object with an error string
		curl -s -o "$T/body" -w '%{http_code}' "$@" > "$T/code"
		echo "$* -> $(cat "$T/code") $(cat "$T/body")" | cat -v >&2
		if jq -e '.error | type == "string"' "$T/body" > /dev/null; then
			cat "$T/code"
		else
			echo "not a JSON error"
		fi
	}
	values=('1;DROP TABLE invoices' "1' OR '1'='1" "1'; DELETE FROM invoices; --"
	    '1 UNION SELECT 1' '1)' '$1' '99999999999999999999' '9223372036854775808'
	    '-1' '-9223372036854775808' '0x10' '1e3' '1.5' ' 1' '+1' '1 '
	    '"\' $'\xff\xfe' $'1\x01' '' 'NULL')
	for v in "${values[@]}"; do
		for p in before limit; do
			[ "$(code_json -G --data-urlencode "$p=$v" "$URL/api/invoices")" = 400 ]
			grep -q "\"bad $p '" "$T/body"
		done
	done
	# a bad Last-Event-ID is not resumed from: the stream starts afresh
	# (all at once, each stream held open for a second)
	i=0 curls=
	for v in "${values[@]}"; do
		i=$((i + 1))
		[ -n "$v" ] || continue
		curl -sN --max-time 1 -G --data-urlencode "last_event_id=$v" "$URL/events" > "$T/q$i" &
		curls="$curls $!"
		# (a header value loses its outer white space on the way)
		case $v in ' '* | *' ' | *[$'\x01'-$'\x1f']* | *[$'\x80'-$'\xff']*) continue ;; esac
		curl -sN --max-time 1 -H "Last-Event-ID: $v" "$URL/events" > "$T/h$i" &
		curls="$curls $!"
	done
	for p in $curls; do wait "$p" || true; done
	i=0
	for v in "${values[@]}"; do
		i=$((i + 1))
		[ -n "$v" ] || continue
		echo "last_event_id=$v" | cat -v >&2
		grep -q '^event: reset$' "$T/q$i"
		[ ! -e "$T/h$i" ] || grep -q '^event: reset$' "$T/h$i"
	done
	[ "$(code_json "$URL/api/invoices?before=1&before=2")" = 400 ]
	[ "$(code_json "$URL/api/invoices?limit=5&limit=1%3BDROP%20TABLE%20invoices")" = 400 ]
	# START's body: rate and duration
	for body in '{"rate":"1;DROP TABLE invoices"}' '{"duration":"1; --"}' \
	    '{"rate":1e308}' '{"rate":-5}' '{"duration":-1}' '{"duration":99999999999999999999}' \
	    "{\"rate\":\"5' OR '1'='1\"}" '{"rate":null}' 'DROP TABLE invoices' '[1]'; do
		[ "$(code_json -X POST --data-binary "$body" "$URL/api/start")" = 400 ]
	done
	[ -z "$(rcli HGET inv:control state)" ]
	# unknown parameters are ignored, never used
	[ "$(curl -s "$URL/api/invoices?limit=3&x=1;DROP%20TABLE%20invoices" | jq -c 'map(.id)')" = '[20,19,18]' ]
	db_rows | diff - "$T/before"
	[ "$(db -c "SELECT count(*) FROM pg_tables WHERE tablename = 'invoices'")" -eq 1 ]
	[ "$(curl -s "$URL/api/invoices?before=21&limit=500" | jq length)" -eq 20 ]
}
