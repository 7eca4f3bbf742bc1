#!/usr/bin/env bats
# The dashboard page in a real browser: Debian's chromium driven by
# playwright-core (tests/browser/*.js), against the whole stack that
# invctl up runs on the test servers, with the display sped up.
# Screenshots go to tests/screenshots/ (ignored by git).

load helper

setup_file() {
	if [ ! -d "$ROOT/tests/node_modules/playwright-core" ] ||
	    [ ! -d "$ROOT/tests/node_modules/eventsource" ]; then
		(cd "$ROOT/tests" && npm install --no-audit --no-fund --silent) >&2
	fi
	command -v chromium >/dev/null || {
		echo "browser.bats: chromium is missing (make deps)" >&2
		return 1
	}
}

setup() {
	db_reset
	db -c 'TRUNCATE generation_cycles'
	redis_reset
	T=$BATS_TEST_TMPDIR
	UP=
	export BROWSER_TMP=$T
}

teardown() {
	if [ -n "$UP" ]; then
		kill "$UP" 2>/dev/null || true
		wait "$UP" 2>/dev/null || true
	fi
}

# up [--display-rate N] [ENV=VALUE ...]: the stack on a free port; sets
# URL and UP (invctl up's pid).
up() {
	local rate=20
	if [ "${1:-}" = --display-rate ]; then
		rate=$2
		shift 2
	fi
	PORT=$(node -e 'const s = require("net").createServer();
	    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
	URL=http://127.0.0.1:$PORT
	env "$@" invctl up --rundir "$T/run" --display-rate "$rate" \
	    -l "127.0.0.1:$PORT" > "$T/up.log" 2>&1 3>&- &
	UP=$!
	wait_for 20 curl -sf "$URL/healthz" -o /dev/null || {
		cat "$T/up.log" >&2
		return 1
	}
}

# browse SCRIPT [ARGS...]: a tests/browser script against $URL.
browse() {
	run timeout 200 node "$ROOT/tests/browser/$1.js" "$URL" "${@:2}"
	echo "$output"
	[ "$status" -eq 0 ]
	[ ${#lines[@]} -eq 0 ] || echo "# ${lines[-1]}" >&3
}

# The pid of one of the stack's programs, a child of invctl up.
child_pid() { pgrep -P "$UP" -x "$1"; }

@test "page: a full cycle from the START button: status, buttons, progress, highlight, cards = /api/stats, grid = database" {
	up
	browse cycle
}

@test "page: auto-scroll follows the newest, holds still while the user reads, and the pill goes back" {
	up
	browse follow
}

@test "page: STOP mid-cycle shows Stopping, then Processing backlog until it is empty, then Idle" {
	up
	browse stop "$(child_pid invgen)"
}

@test "page: three pages open at once see the same rows" {
	up
	browse pages
}

@test "page: a lost connection and a reload mid-cycle miss nothing" {
	up
	browse resume "$(child_pid invserve)"
}

@test "page: START refused says why (409), and asks for the token (401)" {
	up INV_TOKEN=s3cret
	browse refused s3cret
}

@test "page: 3,000 invoices: infinite scroll, a bounded DOM, dropped rows fetched again" {
	up --display-rate 1000
	browse many
}

@test "page: no overlap from 360 to 1920 px, light and dark; screenshots" {
	up
	browse layout "$ROOT/tests/screenshots"
	echo "# screenshots: $ROOT/tests/screenshots/" >&3
}
