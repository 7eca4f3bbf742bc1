#!/usr/bin/env bats
# README's proxy configurations ("Running at scale"), run as printed:
# the ```nginx and ```haproxy blocks are taken from README.md and only
# what cannot run here is changed (the listening address, a free port
# on 127.0.0.1; the two upstream servers, two local invserve --source
# redis fed by one pipeline; nginx's pid, log and temp files, under the
# test's directory). EventSource clients and curl go through them.

load helper
load sse

setup_file() { sse_install; }
setup() {
	sse_setup
	REDIS_STOPPED= PD=
}
teardown() {
	# what the proxy said, when a test failed
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -n "${PD:-}" ]; then
		tail -n 20 "$PD"/stderr "$PD"/error.log 2>/dev/null || true
	fi
	stop_pids
	[ -z "$REDIS_STOPPED" ] || redis_up
}

# readme_block LANG: the lines of README.md's ```LANG block, unindented.
readme_block() {
	awk -v lang="$1" '$1 == "```" lang { on = 1; next }
	    on && $1 == "```" { exit }
	    on { sub(/^  /, ""); print }' "$ROOT/README.md"
}

# localize LISTEN-RE LISTEN: a README block (stdin) with its listening
# line (the one LISTEN-RE matches) and its two upstream addresses made
# local; fails unless each of the three was found exactly once.
localize() {
	local out port
	out=$(sed -E -e "s/$1/$2/" \
	    -e "s/10\.0\.0\.11:8080/127.0.0.1:$A_PORT/" \
	    -e "s/10\.0\.0\.12:8080/127.0.0.1:$B_PORT/")
	for port in "$PPORT" "$A_PORT" "$B_PORT"; do
		if [ "$(grep -c "127\.0\.0\.1:$port\b" <<< "$out")" -ne 1 ]; then
			echo "proxy.bats: README's block has changed shape:" >&2
			printf '%s\n' "$out" >&2
			return 1
		fi
	done
	printf '%s\n' "$out"
}

# two_servers: invserve --source redis at $A (port A_PORT, pid A_PID)
# and at $B, both subscribed.
two_servers() {
	serve --source redis
	A=$URL A_PORT=$PORT A_PID=$SERVE_PID
	serve --source redis
	B=$URL B_PORT=$PORT B_PID=$SERVE_PID
	wait_for 10 sh -c "curl -s '$A/healthz' | grep -q '\"redis\":\"ok\"'"
	wait_for 10 sh -c "curl -s '$B/healthz' | grep -q '\"redis\":\"ok\"'"
}

# proxy_dir NAME: a free port for the proxy (PPORT, its URL P) and a
# directory for its files (PD).
proxy_dir() {
	PPORT=$(free_port)
	P=http://127.0.0.1:$PPORT
	PD=$T/$1
	mkdir -p "$PD"
}

# proxy_start COMMAND...: the proxy in the background, its stderr in
# $PD/stderr; back when it passes /healthz on.
proxy_start() {
	"$@" 2> "$PD/stderr" 3>&- &
	PIDS="$PIDS $!"
	wait_for 10 curl -sf "$P/healthz" -o /dev/null
}

# nginx_up: README's nginx block in front of $A and $B, at $P; its
# stderr and error log in $PD.
nginx_up() {
	proxy_dir nginx
	readme_block nginx |
	    localize '^( *listen) 80;' "\\1 127.0.0.1:$PPORT;" > "$PD/inv.conf"
	# the main context the block goes into; as root, nginx's workers
	# would otherwise be nobody, who cannot enter the test's directory
	{
		[ "$(id -u)" != 0 ] || echo 'user root;'
		echo "pid $PD/nginx.pid;"
		echo "error_log $PD/error.log info;"
		echo 'events {}'
		echo 'http {'
		echo "    access_log $PD/access.log;"
		for t in client_body proxy fastcgi uwsgi scgi; do
			echo "    ${t}_temp_path $PD/$t;"
		done
		echo "    include $PD/inv.conf;"
		echo '}'
	} > "$PD/nginx.conf"
	proxy_start nginx -p "$PD" -c "$PD/nginx.conf" -g 'daemon off;'
}

# haproxy_up: README's HAProxy block in front of $A and $B, at $P; its
# stderr (where it says a server went down or up) in $PD/stderr.
haproxy_up() {
	proxy_dir haproxy
	readme_block haproxy |
	    localize '^( *bind) :80$' "\\1 127.0.0.1:$PPORT" > "$PD/haproxy.cfg"
	proxy_start haproxy -db -f "$PD/haproxy.cfg"
}

# feed N RATE: invgen | invstats | invbuf -r RATE, N invoices shown on
# NS:display at RATE a second (invgen's lines in $T/gen, their ids in
# $T/ids once it is done). Sets FEED.
feed() {
	invgen -q -r 500 -n "$1" | tee "$T/gen" | invstats | invbuf -r "$2" > /dev/null &
	FEED=$!
	PIDS="$PIDS $FEED"
}
fed() { wait "$FEED"; jq .id "$T/gen" > "$T/ids"; }

# metric URL NAME: one of invserve's /metrics.
metric() { curl -sf "$1/metrics" | awk -v n="invserve_$2" '$1 == n { print $2 }'; }

# get URL: the status code and the body of a GET.
get() {
	local code
	code=$(curl -s -o "$T/got" -w '%{http_code}' "$1")
	echo "$code $(cat "$T/got")"
}

# post PATH ORIGIN: POST through the proxy with that Origin; prints the
# status code, the body in $T/body.
post() {
	curl -s -o "$T/body" -w '%{http_code}' -X POST -H "Origin: $2" "$P$1"
}

# ---- every invoice, in order, as it comes ----

stream_test() {
	two_servers
	"$1"_up
	# through the proxy: one client timing each invoice, one that
	# leaves after 8 and comes back with Last-Event-ID, 10 more; and
	# one on $A directly, the time each invoice left invserve
	client "$P/events" --out "$T/p" --times "$T/p.t" --count 24 --timeout 60
	p=$CLIENT_PID
	client "$P/events" --out "$T/r" --reconnect-after 8 --pause 300 --count 24 --timeout 60
	r=$CLIENT_PID
	client "$P/events" --clients 10 --out "$T/m" --count 24 --timeout 60
	m=$CLIENT_PID
	client "$A/events" --out "$T/d" --times "$T/d.t" --count 24 --timeout 60
	d=$CLIENT_PID
	# 24 invoices shown over 6 s
	feed 24 4
	fed
	wait $p
	wait $r
	wait $m
	wait $d

	[ "$(wc -l < "$T/ids")" -eq 24 ]
	diff <(ids_of "$T/d") "$T/ids"
	diff <(ids_of "$T/p") "$T/ids"
	# the client that left resumed: every id once, in order
	diff <(ids_of "$T/r") "$T/ids"
	[ "$(grep -c '^closed$' "$T/r")" -eq 1 ]
	[ "$(grep -c '^open$' "$T/r")" -eq 2 ]
	[ "$(sort -u "$T/m")" = "$(paste -sd, "$T/ids")" ]
	[ "$(wc -l < "$T/m")" -eq 10 ]
	# the invoice events as invserve sent them
	diff <(grep '^invoice' "$T/p") <(grep '^invoice' "$T/d")
	# 13 streams through the proxy and one direct: both servers had some
	a=$(metric "$A" clients_total)
	b=$(metric "$B" clients_total)
	[ $((a + b)) -eq 14 ]
	[ "$a" -ge 2 ]
	[ "$b" -ge 1 ]
	# not held in a buffer: each invoice came through the proxy at most
	# 1.5 s after it reached the direct client (they come 250 ms apart,
	# 24 of about 300 bytes each: a buffer of a few KiB would hold
	# several seconds of them), and the first 3 s before the last
	join -1 2 -2 2 <(sort -k2 "$T/p.t") <(sort -k2 "$T/d.t") |
	    awk '{ d = $2 - $3; if (d > m) m = d } END { print m + 0 }' > "$T/late"
	[ "$(join -1 2 -2 2 <(sort -k2 "$T/p.t") <(sort -k2 "$T/d.t") | wc -l)" -eq 24 ]
	[ "$(cat "$T/late")" -lt 1500 ]
	[ $(($(tail -1 "$T/p.t" | cut -d' ' -f1) - $(head -1 "$T/p.t" | cut -d' ' -f1))) -ge 3000 ]
}

@test "nginx: every invoice through the proxy, in order, as it comes" { stream_test nginx; }
@test "haproxy: every invoice through the proxy, in order, as it comes" { stream_test haproxy; }

# ---- Last-Event-ID through the proxy, landing on either server ----

resume_test() {
	two_servers
	"$1"_up
	client "$A/events" --out "$T/a" --count 40 --timeout 60
	a=$CLIENT_PID
	client "$B/events" --out "$T/b" --count 40 --timeout 60
	b=$CLIENT_PID
	feed 40 50
	fed
	wait $a
	wait $b
	# a page back after a failure, four times, from four places: with
	# the header as EventSource sends it, and with ?last_event_id= as
	# the page does; each lands on whichever server the proxy picks
	on_a=0 on_b=0
	for k in 5 15 25 35; do
		last=$(sed -n "${k}p" "$T/ids")
		a0=$(metric "$A" clients_total)
		b0=$(metric "$B" clients_total)
		if [ $k -lt 20 ]; then
			client "$P/events" --last-event-id "$last" --out "$T/r$k" \
			    --until "$(tail -1 "$T/ids")" --timeout 30
		else
			client "$P/events?last_event_id=$last" --out "$T/r$k" \
			    --until "$(tail -1 "$T/ids")" --timeout 30
		fi
		wait $CLIENT_PID
		diff <(ids_of "$T/r$k") <(sed "1,${k}d" "$T/ids")
		on_a=$((on_a + $(metric "$A" clients_total) - a0))
		on_b=$((on_b + $(metric "$B" clients_total) - b0))
	done
	[ $((on_a + on_b)) -eq 4 ]
	[ "$on_a" -ge 1 ]
	[ "$on_b" -ge 1 ]
}

@test "nginx: Last-Event-ID through the proxy resumes on either server" { resume_test nginx; }
@test "haproxy: Last-Event-ID through the proxy resumes on either server" { resume_test haproxy; }

# ---- START and STOP: Host passed through, so Origin is checked ----

control_test() {
	two_servers
	"$1"_up
	[ "$(post /api/start "http://127.0.0.1:$PPORT")" = 200 ]
	[ "$(jq -r .state "$T/body")" = running ]
	state_is running
	# another site, and the upstream's own address (what invserve would
	# see as Host had the proxy put its own there): refused, untouched
	[ "$(post /api/stop http://shop.example)" = 403 ]
	[ "$(jq -r .error "$T/body")" = "cross-origin request refused" ]
	[ "$(post /api/stop "http://127.0.0.1:$A_PORT")" = 403 ]
	[ "$(post /api/stop "http://127.0.0.1:$B_PORT")" = 403 ]
	state_is running
	[ "$(post /api/stop "http://127.0.0.1:$PPORT")" = 200 ]
	[ "$(jq -r .state "$T/body")" = stopping ]
	state_is stopping
	# the answers of a refusal pass through as well
	[ "$(post /api/stop "http://127.0.0.1:$PPORT")" = 409 ]
	[ "$(jq -r .state.state "$T/body")" = stopping ]
}

@test "nginx: START and STOP through the proxy, with its Origin only" { control_test nginx; }
@test "haproxy: START and STOP through the proxy, with its Origin only" { control_test haproxy; }

# ---- /healthz, and a server gone ----

@test "nginx: /healthz passes through, 503 included" {
	two_servers
	nginx_up
	[ "$(get "$P/healthz")" = '200 {"postgres":"ok","redis":"ok"}' ]
	# a server without its Redis (its stream's source) says 503, and
	# nginx passes that on as it is
	redis_down
	REDIS_STOPPED=1
	wait_for 10 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$A/healthz')\" = 503 ]"
	wait_for 10 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$B/healthz')\" = 503 ]"
	[ "$(get "$P/healthz")" = '503 {"postgres":"ok","redis":"down"}' ]
}

@test "haproxy: /healthz passes through and is its health check" {
	two_servers
	haproxy_up
	[ "$(get "$P/healthz")" = '200 {"postgres":"ok","redis":"ok"}' ]
	# Redis gone: both servers say 503 on /healthz, HAProxy's check
	# takes both out (Layer7, status 503) and answers 503 itself
	redis_down
	REDIS_STOPPED=1
	wait_for 30 grep -q 'Server inv/a is DOWN, reason: Layer7 wrong status, code: 503' "$PD/stderr"
	wait_for 30 grep -q 'Server inv/b is DOWN, reason: Layer7 wrong status, code: 503' "$PD/stderr"
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$P/healthz")" = 503 ]
	# and back in when Redis is
	redis_up
	REDIS_STOPPED=
	wait_for 30 grep -q 'Server inv/a is UP' "$PD/stderr"
	wait_for 30 grep -q 'Server inv/b is UP' "$PD/stderr"
	[ "$(get "$P/healthz")" = '200 {"postgres":"ok","redis":"ok"}' ]
}

# ---- one invserve killed mid-stream ----

# failover_test PROXY: six clients through the proxy, $A killed after
# 20 of 60 invoices; its clients reconnect through the proxy and resume
# on $B with no gap; new clients get the stream from $B.
failover_test() {
	two_servers
	"$1"_up
	client "$P/events" --clients 6 --out "$T/m" --count 60 --timeout 90
	m=$CLIENT_PID
	client "$B/events" --out "$T/b" --count 60 --timeout 90
	b=$CLIENT_PID
	on_a=$(metric "$A" clients)
	[ "$on_a" -ge 1 ]
	[ "$on_a" -le 5 ]
	feed 60 10
	wait_for 30 sh -c "[ \$(grep -c '^invoice' '$T/b') -ge 20 ]"
	kill -9 "$A_PID"
	wait "$A_PID" || true
	if [ "$1" = haproxy ]; then
		wait_for 30 grep -q 'Server inv/a is DOWN' "$PD/stderr"
	fi
	# new requests, at once for nginx (it tries the next server), once
	# the check has taken $A out for HAProxy
	for i in 1 2 3 4; do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$P/healthz")" = 200 ]
	done
	client "$P/events" --clients 4 --out "$T/n" --until 60 --timeout 90
	n=$CLIENT_PID
	fed
	wait $m
	wait $b
	wait $n
	[ "$(tail -1 "$T/ids")" -eq 60 ]
	# every client of the first six, those on $A too, got all 60 once
	[ "$(sort -u "$T/m")" = "$(paste -sd, "$T/ids")" ]
	[ "$(wc -l < "$T/m")" -eq 6 ]
	# the new ones: the backfill, then the rest, no gap
	[ "$(wc -l < "$T/n")" -eq 4 ]
	while IFS= read -r got; do
		k=$(tr , '\n' <<< "$got" | wc -l)
		[ "$k" -ge 20 ]
		[ "$got" = "$(tail -n "$k" "$T/ids" | paste -sd,)" ]
	done < "$T/n"
}

@test "nginx: one invserve killed, its clients resume on the other" { failover_test nginx; }
@test "haproxy: one invserve killed, the check takes it out, clients resume on the other" { failover_test haproxy; }

# ---- a quiet stream ----

@test "both proxies: a quiet stream stays open, the heartbeat passes, then the next invoice" {
	two_servers
	nginx_up
	NP=$P
	haproxy_up
	HP=$P
	# the stream as bytes, and as an EventSource, through each
	curl -sN "$NP/events" > "$T/n.raw" 3>&- &
	nc=$!
	curl -sN "$HP/events" > "$T/h.raw" 3>&- &
	hc=$!
	PIDS="$PIDS $nc $hc"
	client "$NP/events" --out "$T/n" --count 1 --timeout 60
	n=$CLIENT_PID
	client "$HP/events" --out "$T/h" --count 1 --timeout 60
	h=$CLIENT_PID
	# nothing but the heartbeat for up to 15 s
	wait_for 30 grep -qx ': heartbeat' "$T/n.raw"
	wait_for 30 grep -qx ': heartbeat' "$T/h.raw"
	feed 1 10
	fed
	wait $n
	wait $h
	# one connection each, held through the quiet time
	[ "$(grep -cx open "$T/n")" -eq 1 ]
	[ "$(grep -cx open "$T/h")" -eq 1 ]
	[ "$(ids_of "$T/n")" = 1 ]
	[ "$(ids_of "$T/h")" = 1 ]
	kill -0 "$nc"
	kill -0 "$hc"
	wait_for 10 grep -qx 'id: 1' "$T/n.raw"
	wait_for 10 grep -qx 'id: 1' "$T/h.raw"
}
