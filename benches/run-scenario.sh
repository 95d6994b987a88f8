#!/usr/bin/env bash
# Runs one tether-load scenario against its own release server (docs/BENCHMARKS.md).
#
#   benches/run-scenario.sh SCENARIO [more tether-load flags...]
#
# Starts target/release/tether on a fresh temporary database (a SQLite file in WAL
# mode, synchronous=FULL as shipped) with the limits a benchmark needs raised, waits
# for /healthz, runs target/release/tether-load with the server's pid (for its
# memory and CPU), writes target/bench/SCENARIO.json, then stops the server with
# SIGTERM and removes the database. Build both binaries first (make bench-build).
# BENCH_PORT (3917), BENCH_OUT (target/bench) and BENCH_SERVER (the server binary)
# change where it listens, where the JSON goes and which server runs.
#
# Raised limits, and why:
#   TETHER_MAX_PUSHES_PER_SECOND=1000000  the per-client push rate limit (50/s by
#                                         default) is far below a benchmark writer's
#   TETHER_MAX_SUBSCRIBERS_PER_LIST=10000 room for the 5,000 sockets of "connections"
# Each subscriber uses its own client id, so max_sockets_per_client (8) is never hit.
#
# The storm (SCENARIO=storm) kills and restarts the server in the middle of the run,
# so tether-load starts the server itself (--spawn-server) with the same environment
# and the same database, and owns it; its output goes to the same log.
set -euo pipefail

scenario=${1:?usage: benches/run-scenario.sh SCENARIO [tether-load flags...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
port=${BENCH_PORT:-3917}
# Another server binary (e.g. an older build, to measure before and after a change).
server_bin=${BENCH_SERVER:-$root/target/release/tether}
out=${BENCH_OUT:-$root/target/bench}
mkdir -p "$out"

# 5,000 subscribers need 5,000 sockets here and as many in the server (and the bare
# broadcast limit 10,000 more in this process): raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 16384 ]; then
  echo "warning: ulimit -n is $(ulimit -n); 'connections' needs about 16,384" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tether-bench.XXXXXX")
server=
cleanup() {
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

server_env=(
  TETHER_ADDR="127.0.0.1:$port"
  TETHER_DATABASE_URL="sqlite://$tmp/bench.db"
  TETHER_LOG=warn
  TETHER_SITE_ROOT="$root/target/site"
  TETHER_MAX_PUSHES_PER_SECOND=1000000
  TETHER_MAX_SUBSCRIBERS_PER_LIST=10000
)

status=0
if [ "$scenario" = storm ]; then
  env "${server_env[@]}" "$root/target/release/tether-load" --url "http://127.0.0.1:$port" \
    --scenario storm --spawn-server "$server_bin" --server-log "$tmp/server.log" \
    --json "$out/$scenario.json" "$@" || status=$?
else
  env "${server_env[@]}" "$server_bin" >"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
  done
  "$root/target/release/tether-load" --url "http://127.0.0.1:$port" --scenario "$scenario" \
    --server-pid "$server" --json "$out/$scenario.json" "$@" || status=$?
fi
if [ -f "$tmp/server.log" ] && grep -q -E "ERROR|WARN" "$tmp/server.log"; then
  echo "server log:" >&2
  grep -E "ERROR|WARN" "$tmp/server.log" | tail -20 >&2
fi
exit "$status"
