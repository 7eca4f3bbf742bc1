# Shared by the bats files that run invserve and watch it with the
# EventSource client (tests/sse-client.js on the npm "eventsource"
# package). Load it after helper; call sse_install from setup_file,
# sse_setup from setup and stop_pids from teardown.

# sse_setup: empty servers; T a directory, FIFO the display FIFO's path,
# PIDS the processes that stop_pids ends.
sse_setup() {
	db_reset
	redis_reset
	T=$BATS_TEST_TMPDIR
	FIFO=$T/display.fifo
	PIDS=
}

stop_pids() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
}

# serve [ARGS...]: start invserve on a free port, reading $FIFO (unless
# ARGS has --source); sets URL, SERVE_PID and SERVE_ERR (its stderr).
serve() {
	SERVE_ERR=$T/serve.err.$RANDOM
	case " $* " in
	*" --source "*) ;;
	*) set -- -i "$FIFO" "$@" ;;
	esac
	invserve -v -l 127.0.0.1:0 --max-clients 2000 "$@" \
	    2> "$SERVE_ERR" 3>&- &
	SERVE_PID=$!
	PIDS="$PIDS $SERVE_PID"
	wait_for 10 grep -q 'listening on' "$SERVE_ERR"
	URL=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$SERVE_ERR" | head -1)
	PORT=${URL##*:}
	# the start is done when the input is read (after any recovery)
	wait_for 10 curl -sf "$URL/healthz" -o /dev/null
}

# client URL ARGS...: the EventSource client in the background, back
# when every connection it makes is open; CLIENT_PID.
client() {
	local ready=$T/ready.$RANDOM
	node "$ROOT/tests/sse-client.js" "$@" --ready "$ready" 3>&- &
	CLIENT_PID=$!
	PIDS="$PIDS $CLIENT_PID"
	wait_for 30 test -e "$ready"
}

# ids_of FILE: the invoice ids a single client's --out file received.
ids_of() { awk -F '\t' '$1 == "invoice" { print $2 }' "$1"; }
