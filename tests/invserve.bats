#!/usr/bin/env bats
# invserve: the SSE stream (order, ids, backfill, resume, fan-out, slow
# clients), the API, control, limits and faults, against a real
# PostgreSQL and Redis, with a spec-following EventSource client
# (tests/sse-client.js on the npm "eventsource" package).

load helper
load sse

setup_file() {
	sse_install
}

setup() {
	sse_setup
}

teardown() {
	stop_pids
	exec 5>&- 2>/dev/null || true
	# a fault test that failed half-way leaves the servers up for the next
	redis_up > /dev/null 2>&1 || true
	pg_up > /dev/null 2>&1 || true
}

# gen N [RATE]: N invoices into PostgreSQL and the FIFO.
gen() { invgen -q -r "${2:-0}" -n "$1" > "$FIFO"; }

metric() { curl -s "$URL/metrics" | awk -v m="invserve_$1" '$1 == m { print $2 }'; }
seqids() { seq -s ' ' "$1" "$2"; }
# For wait_for, which runs its command again each time.
metric_is() { [ "$(metric "$1")" = "$2" ]; }
last_is() { [ "$(ids_of "$1" | tail -1)" = "$2" ]; }
served_is() { [ "$(rcli GET inv:served)" = "$1" ]; }
retries_are() { [ "$(grep -c '^retry: ' "$1")" -eq "$2" ]; }

@test "usage: --help, --version, bad flags and numbers exit 64" {
	run invserve --help
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: invserve [-qv] [-l addr:port] [-i path | --source redis]"* ]]
	run invserve --version
	[ "$output" = "invserve 0.1.0" ]
	run invserve --bogus
	[ "$status" -eq 64 ]
	[[ "$output" == *"usage: invserve"* ]]
	run invserve --max-clients 0
	[ "$status" -eq 64 ]
	[ "$output" = "invserve: bad client count '0': too small (expected 1 to 1000000)" ]
	run invserve --client-queue 12x
	[ "$status" -eq 64 ]
	run invserve -l 127.0.0.1
	[ "$status" -eq 64 ]
	[[ "$output" == *"bad listen address '127.0.0.1'"* ]]
	run invserve -i "$T/f" --source redis
	[ "$status" -eq 64 ]
	[ "$output" = "invserve: -i and --source redis exclude each other" ]
	run invserve --www "$T/none"
	[ "$status" -eq 66 ]
	run invserve extra
	[ "$status" -eq 64 ]
}

@test "events: headers, retry, state and stats first, then invoices in order with their ids" {
	serve
	curl -sN -D "$T/h" --max-time 3 "$URL/events" > "$T/raw" &
	PIDS="$PIDS $!"
	client "$URL/events" --out "$T/c" --until 20
	wait_for 10 metric_is clients 2
	invgen -q -r 0 -n 20 | tee "$T/lines" > "$FIFO"
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 1 20) " ]
	# each event's data is the input line, byte for byte
	diff <(awk -F '\t' '$1 == "invoice" { print $3 }' "$T/c") "$T/lines"
	# state and stats come before the first invoice
	[ "$(sed -n 2p "$T/c" | cut -f1)" = state ]
	[ "$(sed -n 3p "$T/c" | cut -f1)" = stats ]
	[ "$(sed -n 2p "$T/c" | cut -f3 | jq -r .state)" = idle ]
	sleep 3
	tr -d '\r' < "$T/h" > "$T/hh"
	grep -qx 'HTTP/1.1 200 OK' "$T/hh"
	grep -qx 'Content-Type: text/event-stream' "$T/hh"
	grep -qx 'Cache-Control: no-cache' "$T/hh"
	grep -qx 'X-Accel-Buffering: no' "$T/hh"
	[[ "$(head -1 "$T/raw")" =~ ^retry:\ [0-9]+$ ]]
	[ "$(grep -c '^id: ' "$T/raw")" -eq 20 ]
	grep -q '^event: invoice$' "$T/raw"
}

@test "a new client gets the last 50 invoices (--backfill N), then the live stream" {
	serve
	gen 80
	wait_for 5 metric_is last_id 80
	client "$URL/events" --out "$T/a" --until 85
	client "$URL/events" --out "$T/b" --until 85 --last-event-id 83
	gen 5
	wait_for 10 last_is "$T/a" 85
	[ "$(ids_of "$T/a" | tr '\n' ' ')" = "$(seqids 31 85) " ]
	wait_for 10 last_is "$T/b" 85
	[ "$(ids_of "$T/b" | tr '\n' ' ')" = "84 85 " ]
	kill "$SERVE_PID"; wait "$SERVE_PID" || true
	serve --backfill 3
	client "$URL/events" --out "$T/c" --count 3
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "83 84 85 " ]
}

@test "Last-Event-ID resume after a disconnect: nothing missed, nothing repeated" {
	serve --backfill 0
	# it drops its connection after 7 invoices and comes back 700 ms
	# later with Last-Event-ID; invoices keep flowing meanwhile
	client "$URL/events" --out "$T/c" --until 40 --reconnect-after 7 --pause 700
	gen 40 40
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 1 40) " ]
	[ "$(grep -c '^open$' "$T/c")" -eq 2 ]
	[ "$(grep -c '^closed$' "$T/c")" -eq 1 ]
}

@test "resume from PostgreSQL when the ring no longer reaches back; ?last_event_id= too" {
	serve --ring 10 --backfill 5
	gen 60
	wait_for 5 metric_is last_id 60
	client "$URL/events" --out "$T/c" --until 60 --last-event-id 12
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 13 60) " ]
	curl -sN --max-time 1 "$URL/events?last_event_id=55" > "$T/raw" || true
	[ "$(grep '^id: ' "$T/raw" | tr '\n' ' ')" = "id: 56 id: 57 id: 58 id: 59 id: 60 " ]
	# generated but never displayed: not replayed
	invgen -q -r 0 -n 5 > /dev/null
	client "$URL/events" --out "$T/d" --until 60 --last-event-id 1
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/d" | tr '\n' ' ')" = "$(seqids 2 60) " ]
	[ "$(metric resumes_total)" -eq 3 ]
}

@test "an id too old to replay without PostgreSQL gets an explicit reset, then the recent invoices" {
	serve --ring 10 --backfill 4
	gen 30
	wait_for 5 metric_is last_id 30
	pg_down
	wait_for 10 sh -c "curl -s '$URL/healthz' | grep -q '\"postgres\":\"down\"'"
	curl -sN --max-time 1 -H 'Last-Event-ID: 3' "$URL/events" > "$T/raw" || true
	pg_up
	grep -q '^event: reset$' "$T/raw"
	[ "$(grep '^id: ' "$T/raw" | tr '\n' ' ')" = "id: 27 id: 28 id: 29 id: 30 " ]
	# a Last-Event-ID that is not a number cannot be resumed either
	curl -sN --max-time 1 -H 'Last-Event-ID: abc' "$URL/events" > "$T/raw2" || true
	grep -q '^event: reset$' "$T/raw2"
}

@test "500 concurrent clients receive identical sequences" {
	serve --backfill 0
	client "$URL/events" --clients 500 --out "$T/all" --until 100 --timeout 60
	[ "$(metric clients)" -eq 500 ]
	gen 100 200
	wait "$CLIENT_PID"
	[ "$(wc -l < "$T/all")" -eq 500 ]
	[ "$(sort -u "$T/all" | wc -l)" -eq 1 ]
	[ "$(head -1 "$T/all")" = "$(seq -s , 1 100)" ]
}

@test "a stalled client is dropped without delaying the others" {
	serve --client-queue 64K --backfill 0
	# 60,000 invoices are about 15 MB: more than the kernel's socket
	# buffers on both ends can hide (tcp_wmem and tcp_rmem reach 4 and
	# 6 MB), so the stalled client's own queue must overflow.
	client "$URL/events" --out "$T/c" --until 60000 --timeout 120
	# a raw socket that asks for the stream and never reads
	exec 5<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /events HTTP/1.1\r\nHost: x\r\n\r\n' >&5
	wait_for 10 metric_is clients 2
	start=$(date +%s)
	# at a pace a reading client keeps up with (invgen -r 0 writes a
	# batch of 20,000 lines at once, which would overflow its 64K too)
	gen 60000 6000
	wait "$CLIENT_PID"
	elapsed=$(( $(date +%s) - start ))
	[ "$elapsed" -lt 60 ]
	[ "$(ids_of "$T/c" | wc -l)" -eq 60000 ]
	[ "$(ids_of "$T/c" | sort -n | uniq | wc -l)" -eq 60000 ]
	wait_for 10 metric_is clients_dropped_total 1
	# the stalled one was dropped, the other has left: none is counted
	wait_for 10 metric_is clients 0
}

@test "START and STOP: CSRF refused, token required when INV_TOKEN is set, the state machine" {
	serve
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Origin: http://evil.example' "$URL/api/start"
	[ "$output" = 403 ]
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Sec-Fetch-Site: cross-site' "$URL/api/start"
	[ "$output" = 403 ]
	[ "$(rcli HGET inv:control state)" = "" ]
	run curl -s -X POST -H "Origin: $URL" -H 'Sec-Fetch-Site: same-origin' "$URL/api/start"
	[ "$(echo "$output" | jq -r '.state, .cycle, .target')" = "running
1
1500" ]
	[ "$(rcli HGET inv:control state)" = running ]
	run curl -s -w '%{http_code}' -X POST "$URL/api/start"
	[ "$output" = '{"error":"cannot start: the state is running (START is accepted when idle or draining)","state":'"$(curl -s "$URL/api/state")"'}
409' ]
	run curl -s -X POST "$URL/api/stop"
	[ "$(echo "$output" | jq -r .state)" = stopping ]
	run curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/stop"
	[ "$output" = 409 ]
	run curl -s -o /dev/null -w '%{http_code}' "$URL/api/start"
	[ "$output" = 405 ]
	rcli HSET inv:control state draining > /dev/null
	run curl -s -X POST -d '{"rate":2.5,"duration":4}' "$URL/api/start"
	[ "$(echo "$output" | jq -c '[.state, .cycle, .rate, .duration, .target]')" = '["running",2,2.5,4,10]' ]
	run curl -s -w '%{http_code}' -X POST -d '{"rate":"x"}' "$URL/api/stop"
	[[ "$output" == *'"bad rate'*'
400' ]]
	kill "$SERVE_PID"; wait "$SERVE_PID" || true

	INV_TOKEN=s3cret serve
	rcli HSET inv:control state running > /dev/null
	run curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/stop"
	[ "$output" = 401 ]
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer wrong' "$URL/api/stop"
	[ "$output" = 401 ]
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer s3cret' "$URL/api/stop"
	[ "$output" = 200 ]
	[ "$(rcli HGET inv:control state)" = stopping ]
}

@test "state changes reach SSE clients as state events (published on NS:state)" {
	serve
	rcli SUBSCRIBE inv:state > "$T/sub" 3>&- &
	PIDS="$PIDS $!"
	client "$URL/events" --out "$T/c" --timeout 5
	curl -s -X POST "$URL/api/start" > "$T/start"
	wait_for 5 grep -q running "$T/sub"
	wait_for 5 sh -c "grep '^state' '$T/c' | grep -q running"
	grep -qF "$(cat "$T/start")" "$T/sub"
	# invbuf's backlog changes arrive through the NS:buf channel
	rcli HSET inv:buf backlog 42 > /dev/null
	rcli PUBLISH inv:buf '{"backlog":42,"displayed":0,"eof":false}' > /dev/null
	wait_for 5 sh -c "grep '^state' '$T/c' | tail -1 | cut -f3 | jq -e '.backlog == 42' > /dev/null"
}

@test "stats: the NS:stats hash, its channel to the stream, PostgreSQL when Redis has none" {
	serve
	gen 10
	wait_for 5 metric_is last_id 10
	want=$(db -c "SELECT count(*), sum(vat_amount), sum(total_amount),
	    round(avg(total_amount), 2) FROM invoices" | tr '|' ' ')
	run curl -s "$URL/api/stats"
	[ "$(echo "$output" | jq -r .source)" = postgres ]
	[ "$(echo "$output" | sed -E 's/.*"count":([0-9]+),.*"vat_amount":([0-9.]+),"total_amount":([0-9.]+),"average_amount":([0-9.]+).*/\1 \2 \3 \4/')" = "$want" ]
	rcli HSET inv:stats count 3 subtotal 1000 vat 150 total 1150 > /dev/null
	run curl -s "$URL/api/stats"
	[ "$output" = '{"count":3,"subtotal":10.00,"vat_amount":1.50,"total_amount":11.50,"average_amount":3.83,"source":"redis"}' ]
	client "$URL/events" --out "$T/c" --timeout 3
	rcli PUBLISH inv:stats '{"count":4,"total_amount":12.00}' > /dev/null
	wait_for 5 grep -qF "$(printf 'stats\t\t{"count":4,"total_amount":12.00}')" "$T/c"
}

@test "bad requests of every kind are answered while a streaming client keeps receiving" {
	mkdir -p "$T/www/sub"
	echo '<p>hello' > "$T/www/index.html"
	echo 'secret' > "$T/outside"
	ln -s "$T/outside" "$T/www/link"
	serve --www "$T/www" --backfill 0
	client "$URL/events" --out "$T/c" --until 60
	gen 30 30 &
	G=$!
	code() { curl -s -o /dev/null -w '%{http_code}' --path-as-is "$@"; }
	[ "$(code "$URL/nope")" = 404 ]
	[ "$(code "$URL/api/nope")" = 404 ]
	[ "$(code -X DELETE "$URL/events")" = 405 ]
	[ "$(code -X POST "$URL/")" = 405 ]
	[ "$(code -X POST "$URL/api/invoices")" = 405 ]
	[ "$(code "$URL/api/invoices?limit=0")" = 400 ]
	[ "$(code "$URL/api/invoices?before=abc")" = 400 ]
	[ "$(code "$URL/../Makefile")" = 400 ]
	[ "$(code "$URL/%2e%2e/%2e%2e/etc/passwd")" = 400 ]
	[ "$(code "$URL/sub/..%2f..%2foutside")" = 400 ]
	[ "$(code "$URL/link")" = 404 ]
	[ "$(code -X POST --data-binary @<(head -c 20000 /dev/zero) "$URL/api/start")" = 413 ]
	[ "$(code -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)" "$URL/healthz")" = 431 ]
	[ "$(code "$URL/$(head -c 5000 /dev/zero | tr '\0' a)")" = 414 ]
	printf 'GARBAGE\r\n\r\n' > "$T/garbage"
	exec 5<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$T/garbage" >&5
	run timeout 5 head -1 <&5
	exec 5>&-
	[[ "$output" == "HTTP/1.1 400 Bad Request"* ]]
	[ "$(curl -s "$URL/")" = '<p>hello' ]
	[ "$(code "$URL/sub")" = 301 ]
	wait "$G"
	gen 30
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 1 60) " ]
	[ "$(metric 'http_errors_total{code="404"}')" -eq 3 ]
}

@test "connections that close give their descriptors back at once, before a request or after one" {
	serve --backfill 0
	fds() { ls "/proc/$SERVE_PID/fd" | wc -l; }
	# what the start's own connections held is given back by now
	sleep 1.5
	local base
	base=$(fds)
	# 300 "Connection: close" requests, each read whole, and invserve's
	# descriptors counted after every 50th: each closed as its reply went
	run python3 -c '
import os, socket, sys
port, pid, base = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
worst = 0
for i in range(1, 301):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
         if l.lower().startswith(b"content-length:")][0]
    while len(body) < n:
        body += s.recv(4096)
    s.close()
    if i % 50 == 0:
        worst = max(worst, len(os.listdir("/proc/%s/fd" % pid)) - base)
print(worst)
' "$PORT" "$SERVE_PID" "$base"
	[ "$status" -eq 0 ]
	[ "$output" -le 2 ]
	# 100 that close before sending anything: counted, and gone too
	python3 -c '
import socket, sys
for _ in range(100):
    socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
' "$PORT"
	wait_for 10 metric_is http_no_request_total 100
	[ "$(fds)" -le $((base + 1)) ]
	[ "$(metric http_requests_total)" -ge 300 ]
}

@test "CORS only for --allow-origin, including the Last-Event-ID preflight" {
	serve
	run curl -s -D - -o /dev/null -H 'Origin: http://a.example' "$URL/api/state"
	[[ "$output" != *Access-Control* ]]
	kill "$SERVE_PID"; wait "$SERVE_PID" || true
	serve --allow-origin http://a.example --allow-origin http://b.example
	run sh -c "curl -s -D - -o /dev/null -H 'Origin: http://b.example' '$URL/api/stats' | tr -d '\r'"
	[[ "$output" == *"Access-Control-Allow-Origin: http://b.example"* ]]
	run sh -c "curl -s -D - -o /dev/null -X OPTIONS -H 'Origin: http://a.example' -H 'Access-Control-Request-Headers: last-event-id' '$URL/events' | tr -d '\r'"
	[[ "$output" == "HTTP/1.1 204 No Content"* ]]
	[[ "$output" == *"Access-Control-Allow-Headers: Last-Event-ID"* ]]
	[[ "$output" == *"Access-Control-Allow-Origin: http://a.example"* ]]
	run sh -c "curl -s -D - -o /dev/null -H 'Origin: http://c.example' '$URL/api/stats' | tr -d '\r'"
	[[ "$output" != *Access-Control-Allow-Origin* ]]
	# a listed origin still cannot START
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Origin: http://a.example' "$URL/api/start"
	[ "$output" = 403 ]
}

@test "the FIFO producer restarts without a server restart; partial lines join across writes" {
	serve --backfill 0
	client "$URL/events" --out "$T/c" --until 13
	gen 5
	gen 5
	invgen -q -r 0 -n 3 > "$T/three"
	# one line written in two pieces by two processes
	{ head -c 40 "$T/three"; } > "$FIFO"
	sleep 0.3
	{ tail -c +41 "$T/three"; } > "$FIFO"
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 1 13) " ]
	[ "$(metric input_bad_lines_total)" -eq 0 ]
}

@test "duplicate ids (at-least-once upstream) are dropped; bad lines are counted and reported" {
	serve --backfill 0
	client "$URL/events" --out "$T/c" --until 6
	invgen -q --no-db -r 0 -n 6 > "$T/six"
	{ head -3 "$T/six"; head -4 "$T/six"; echo 'not json'; echo '{"id":9}'; tail -2 "$T/six"; tail -1 "$T/six"; } > "$FIFO"
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "1 2 3 4 5 6 " ]
	wait_for 5 metric_is input_lines_total 12
	[ "$(metric input_duplicates_total)" -eq 4 ]
	[ "$(metric input_bad_lines_total)" -eq 2 ]
	grep -qx 'invserve: input line 8: not an invoice: not a JSON object' "$SERVE_ERR"
	grep -qx 'invserve: input line 9: not an invoice: missing key invoice_number' "$SERVE_ERR"
}

@test "/api/invoices pages newest first by id, only what was displayed" {
	serve
	gen 25
	wait_for 5 metric_is last_id 25
	invgen -q -r 0 -n 5 > /dev/null	# in the database, never shown
	run curl -s "$URL/api/invoices?limit=10"
	[ "$(echo "$output" | jq -c 'map(.id)')" = "[25,24,23,22,21,20,19,18,17,16]" ]
	run curl -s "$URL/api/invoices?before=16&limit=10"
	[ "$(echo "$output" | jq -c 'map(.id)')" = "[15,14,13,12,11,10,9,8,7,6]" ]
	run curl -s "$URL/api/invoices?before=6&limit=10"
	[ "$(echo "$output" | jq -c 'map(.id)')" = "[5,4,3,2,1]" ]
	run curl -s "$URL/api/invoices?before=1"
	[ "$output" = "[]" ]
	[ "$(curl -s "$URL/api/invoices" | jq length)" -eq 25 ]
	# the same bytes as the stream sent
	curl -s "$URL/api/invoices?before=4&limit=3" | sed 's/^\[//; s/\]$//; s/},{/}\n{/g' | tac > "$T/api"
	curl -sN --max-time 1 "$URL/events?last_event_id=0" | sed -n 's/^data: //p' | grep '"id"' | head -3 > "$T/sse"
	diff "$T/api" "$T/sse"
	run curl -s "$URL/api/invoices?limit=100000"
	[ "$(echo "$output" | jq length)" -eq 25 ]
}

@test "/healthz with Redis down: 200, stats from PostgreSQL, the stream goes on; PostgreSQL down: 503" {
	serve --backfill 0
	client "$URL/events" --out "$T/c" --until 10
	run curl -s -w '%{http_code}' "$URL/healthz"
	[ "$output" = '{"postgres":"ok","redis":"ok"}
200' ]
	redis_down
	wait_for 10 sh -c "curl -s '$URL/healthz' | grep -q '\"redis\":\"down\"'"
	run curl -s -w '%{http_code}' "$URL/healthz"
	[ "$output" = '{"postgres":"ok","redis":"down"}
200' ]
	gen 10
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 1 10) " ]
	[ "$(curl -s "$URL/api/stats" | jq -r '"\(.source) \(.count)"')" = "postgres 10" ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/state")" = 503 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/start")" = 503 ]
	redis_up
	wait_for 15 sh -c "curl -s '$URL/healthz' | grep -q '\"redis\":\"ok\"'"
	pg_down
	wait_for 10 sh -c "curl -s '$URL/healthz' | grep -q '\"postgres\":\"down\"'"
	run curl -s -w '%{http_code}' "$URL/healthz"
	pg_up
	[ "$output" = '{"postgres":"down","redis":"ok"}
503' ]
}

@test "PostgreSQL down: the stream goes on and the API answers 503" {
	serve --backfill 0
	client "$URL/events" --out "$T/c" --until 5
	invgen -q -r 0 -n 5 > "$T/five"
	pg_down
	wait_for 10 sh -c "curl -s '$URL/healthz' | grep -q '\"postgres\":\"down\"'"
	cat "$T/five" > "$FIFO"
	wait "$CLIENT_PID"
	run curl -s -w '%{http_code}' "$URL/api/invoices"
	pg_up
	[ "$output" = '{"error":"PostgreSQL is unavailable"}
503' ]
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "1 2 3 4 5 " ]
	wait_for 15 sh -c "curl -s '$URL/healthz' | grep -q '\"postgres\":\"ok\"'"
	[ "$(curl -s "$URL/api/invoices" | jq length)" -eq 5 ]
}

@test "after a restart, what invbuf showed while invserve was down is recovered in order" {
	serve
	gen 10
	wait_for 5 served_is 10
	kill "$SERVE_PID"; wait "$SERVE_PID" || true
	# 11..15 were shown while invserve was away (lost with the FIFO);
	# 16 and 17 not yet
	invgen -q -r 0 -n 7 > "$T/seven"
	rcli HSET inv:buf last_out 15 > /dev/null
	serve --backfill 0
	grep -q 'recovered 5 invoices from PostgreSQL' "$SERVE_ERR"
	[ "$(rcli GET inv:served)" = 15 ]
	client "$URL/events" --out "$T/c" --until 17 --last-event-id 10
	# the producer then repeats 14 and 15 (at-least-once) before 16, 17
	sed -n '4,7p' "$T/seven" > "$FIFO"
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/c" | tr '\n' ' ')" = "$(seqids 11 17) " ]
	[ "$(metric recovered_total)" -eq 5 ]
	[ "$(metric input_duplicates_total)" -eq 2 ]
}

@test "past --max-clients: 200 with a jittered retry, then closed" {
	serve --max-clients 2
	client "$URL/events" --out "$T/a" --timeout 10
	client "$URL/events" --out "$T/b" --timeout 10
	wait_for 10 metric_is clients 2
	run curl -s --max-time 3 -w ' %{http_code}' "$URL/events"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^retry:\ [0-9]+$'\n\n'\ 200$ ]]
	r=${output#retry: }; r=${r%%$'\n'*}
	[ "$r" -ge 10000 ] && [ "$r" -lt 30000 ]
	[ "$(metric clients_shed_total)" -eq 1 ]
}

@test "SIGTERM: every client gets a jittered retry and its stream ends; exit 0" {
	serve --backfill 0
	for i in 1 2 3; do
		curl -sN --max-time 10 "$URL/events" > "$T/raw$i" 3>&- &
		PIDS="$PIDS $!"
	done
	wait_for 10 metric_is clients 3
	kill -TERM "$SERVE_PID"
	rc=0
	wait "$SERVE_PID" || rc=$?
	[ "$rc" -eq 0 ]
	for i in 1 2 3; do
		wait_for 5 retries_are "$T/raw$i" 2
		r=$(grep '^retry: ' "$T/raw$i" | tail -1 | cut -d' ' -f2)
		[ "$r" -ge 1000 ] && [ "$r" -le 2000 ]
	done
	grep -q 'SIGTERM: closing 3 clients' "$SERVE_ERR"
}

@test "--source redis: invoices from the NS:display channel, several servers alike" {
	serve --source redis
	u1=$URL
	serve --source redis
	u2=$URL
	wait_for 10 sh -c "curl -s '$u1/healthz' | grep -q '\"redis\":\"ok\"' && curl -s '$u2/healthz' | grep -q '\"redis\":\"ok\"'"
	client "$u1/events" --out "$T/a" --until 5
	a=$CLIENT_PID
	client "$u2/events" --out "$T/b" --until 5
	invgen -q -r 0 -n 5 | while IFS= read -r l; do rcli PUBLISH inv:display "$l" > /dev/null; done
	wait "$a"
	wait "$CLIENT_PID"
	[ "$(ids_of "$T/a" | tr '\n' ' ')" = "1 2 3 4 5 " ]
	diff <(ids_of "$T/a") <(ids_of "$T/b")
}
