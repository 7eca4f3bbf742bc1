# Shared by every bats file. tests/run has started a private PostgreSQL
# and Redis and exported DATABASE_URL and REDIS_URL for them.

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
for d in "$ROOT"/cmd/*/; do PATH=$d:$PATH; done
export PATH

if [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
	echo "run the tests through 'make check' or tests/run" >&2
	exit 1
fi
REDIS_SOCK=${REDIS_URL#unix://}

# True under make check-san: memory figures are then the sanitizers'
# (shadow memory, quarantine), not the program's, and are not checked.
under_san() { [ -n "${INV_SAN:-}" ]; }

# psql on the test database: unaligned, tuples only, stop on error.
db() { psql "$DATABASE_URL" -X -q -tA -v ON_ERROR_STOP=1 "$@"; }
db_reset() { db -c 'TRUNCATE invoices RESTART IDENTITY'; }
rcli() { redis-cli -s "$REDIS_SOCK" "$@"; }
redis_reset() { rcli FLUSHALL >/dev/null; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local limit=$1 i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ $i -ge $((limit * 10)) ] && return 1
		sleep 0.1
	done
}

# stop_pids: end every process a test put in $PIDS, and reap it.
stop_pids() {
	local p
	for p in ${PIDS:-}; do kill "$p" 2>/dev/null || true; done
	for p in ${PIDS:-}; do wait "$p" 2>/dev/null || true; done
}

# Stop and start the test servers, for fault tests.
pg_down() { sh "$ROOT/tests/servers" pgstop "$INV_SERVERS_DIR"; }
# A server started from a test must not hold bats' descriptors open, or
# bats waits for it at the end of the file.
pg_up() { sh "$ROOT/tests/servers" pgstart "$INV_SERVERS_DIR" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; }
redis_down() { sh "$ROOT/tests/servers" redisstop "$INV_SERVERS_DIR"; }
redis_up() { sh "$ROOT/tests/servers" redisstart "$INV_SERVERS_DIR" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; }

# count subtotal vat total last_id, from Redis and from the database.
stats_redis() { rcli HMGET inv:stats count subtotal vat total last_id | tr '\n' ' '; }
stats_db() {
	db -F ' ' -c "SELECT count(*), coalesce(sum(subtotal) * 100, 0)::bigint,
	    coalesce(sum(vat_amount) * 100, 0)::bigint,
	    coalesce(sum(total_amount) * 100, 0)::bigint,
	    coalesce(max(id), 0) FROM invoices ${1:-}" | sed 's/$/ /'
}
# The stats JSON as PostgreSQL itself computes it (round() is half-up
# for positive amounts).
json_db() {
	db -c "SELECT format('{\"count\":%s,\"total_amount\":%s,\"vat_amount\":%s,\"average_amount\":%s,\"source\":\"%s\"}',
	    count(*), coalesce(sum(total_amount), 0.00), coalesce(sum(vat_amount), 0.00),
	    coalesce(round(avg(total_amount), 2), 0.00), '$1') FROM invoices"
}

# The invoices in the database, one line each, in the same shape as
# lines_of does for NDJSON, so the two compare with diff.
db_rows() {
	db -F ' ' -c "SELECT id, invoice_number,
	    to_char(invoice_date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
	    subtotal, vat_amount, total_amount, seller_name || '|' || buyer_name
	    FROM invoices ORDER BY id"
}
# The same fields from NDJSON invoice lines, amounts as written.
lines_of() {
	jq -r '[.id, .invoice_number, .invoice_date] | @tsv' "$1" | tr '\t' ' ' > "$1.a"
	sed -E 's/.*"subtotal":([0-9.]+),"vat_amount":([0-9.]+),"total_amount":([0-9.]+)}$/\1 \2 \3/' "$1" > "$1.b"
	jq -r '.seller_name + "|" + .buyer_name' "$1" > "$1.c"
	paste -d ' ' "$1.a" "$1.b" "$1.c" | sort -n
	rm -f "$1.a" "$1.b" "$1.c"
}

# stamp [READY]: stdin to stdout, each line prefixed with the
# CLOCK_MONOTONIC time in nanoseconds at which it arrived (os.read, so
# a line is stamped when it comes, not when a buffer fills). Creates
# READY once it is reading, so a test can hold its input until then.
stamp() {
	python3 -c '
import os, sys, time
if len(sys.argv) > 1:
    open(sys.argv[1], "w").close()
buf = b""
while True:
    b = os.read(0, 65536)
    if not b:
        break
    t = time.monotonic_ns()
    *lines, buf = (buf + b).split(b"\n")
    for l in lines:
        sys.stdout.buffer.write(b"%d %s\n" % (t, l))
    sys.stdout.flush()
' "$@"
}
# min_gap FILE: the smallest gap in ms between consecutive lines of
# stamp's output, then the number of lines: "49.87 30".
min_gap() {
	awk 'NR > 1 { g = ($1 - p) / 1e6; if (m == "" || g < m) m = g }
	    { p = $1 } END { printf "%.2f %d\n", m, NR }' "$1"
}
# unstamp FILE: the lines of stamp's output without their times.
unstamp() { cut -d' ' -f2- "$1"; }

# A good invoice line with the given id and subtotal in cents.
line_of() {
	local id=$1 sub=$2 vat total
	vat=$(( (sub * 15 + 50) / 100 ))
	total=$((sub + vat))
	printf '{"id":%d,"invoice_number":"INV-20261203-%08d","invoice_date":"2026-12-03T15:00:00.000000Z","seller_name":"Acme Ltd","buyer_name":"Globex GmbH","subtotal":%d.%02d,"vat_amount":%d.%02d,"total_amount":%d.%02d}\n' \
	    "$id" "$id" $((sub / 100)) $((sub % 100)) $((vat / 100)) $((vat % 100)) $((total / 100)) $((total % 100))
}

# sse_install: the npm packages of tests/package.json, into
# tests/node_modules, once.
sse_install() {
	if [ ! -d "$ROOT/tests/node_modules/eventsource" ]; then
		(cd "$ROOT/tests" && npm install --no-audit --no-fund --silent) >&2
	fi
}

# ---- the whole stack under invctl up (up.bats, faults.bats) ----
# stack_setup in setup (empty servers; T, RUN, UP, CLIENT), stack_down
# in teardown.
stack_setup() {
	db_reset
	db -c 'TRUNCATE generation_cycles'
	redis_reset
	T=$BATS_TEST_TMPDIR
	RUN=$T/run
	UP=
	CLIENT=
}

free_port() {
	node -e 'const s = require("net").createServer();
	    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

# up [ARGS]: the stack on a free port, display at 20 lines a second.
up() {
	PORT=$(free_port)
	URL=http://127.0.0.1:$PORT
	invctl up --rundir "$RUN" --display-rate 20 -l "127.0.0.1:$PORT" "$@" \
	    > "$T/up.out" 2> "$T/up.err" 3>&- &
	UP=$!
	wait_for 15 curl -sf "$URL/healthz" -o /dev/null
}

# watch: a browser-side EventSource recording every event.
watch() {
	node "$ROOT/tests/sse-client.js" "$URL/events" --out "$T/sse" \
	    --timeout 300 --count 1000000 3>&- &
	CLIENT=$!
	wait_for 10 test -s "$T/sse"
}

state() { invctl status | jq -r .state; }
state_is() { [ "$(state)" = "$1" ]; }
rows() { db -c 'SELECT count(*) FROM invoices'; }
child() { pgrep -P "$UP" -x "$1"; }

# The three guarantees, once the stack is idle again.
check_guarantees() {
	local target=$1
	[ "$(rows)" -eq "$target" ]
	# every invoice shown exactly once, in order
	awk -F '\t' '$1 == "invoice" { print $2 }' "$T/sse" > "$T/shown"
	db -c 'SELECT id FROM invoices ORDER BY id' > "$T/stored"
	diff "$T/shown" "$T/stored"
	# the statistics equal the database, to the cent
	[ "$(invstats show | jq -c '[.count, .total_amount, .vat_amount]')" = \
	  "$(db -c "SELECT json_build_array(count(*), sum(total_amount), sum(vat_amount)) FROM invoices" | jq -c .)" ]
	[ "$(invstats show | jq -r .source)" = redis ]
}

# Stop what up and watch started.
stack_down() {
	[ -n "$CLIENT" ] && kill "$CLIENT" 2>/dev/null
	if [ -n "$UP" ] && kill -0 "$UP" 2>/dev/null; then
		kill -TERM "$UP"
		wait "$UP" 2>/dev/null
	fi
	true
}
