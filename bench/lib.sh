# Sourced by the benchmarks: private servers in a temporary directory,
# stopped on exit, and small helpers.
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for d in "$root"/cmd/*/; do PATH=$d:$PATH; done
export PATH
bench_tmp=$(mktemp -d /tmp/inv-bench.XXXXXX)
chmod 755 "$bench_tmp"
trap 'sh "$root/tests/servers" stop "$bench_tmp/servers" >/dev/null 2>&1; rm -rf "$bench_tmp"' EXIT
trap 'exit 130' INT TERM
bench_servers() {
	sh "$root/tests/servers" start "$bench_tmp/servers" > "$bench_tmp/env"
	. "$bench_tmp/env"
	"$root/sql/migrate" >/dev/null
}
# now_ms: a monotonic-enough wall clock in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
