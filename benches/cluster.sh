#!/usr/bin/env bash
# Tether on PostgreSQL with one and three nodes, next to SQLite, in one run
# (docs/BENCHMARKS.md, "Several nodes on PostgreSQL").
#
#   benches/cluster.sh [STEP...]      steps: ingest fanout fanout1000 connections
#                                     (default: all four, in that order)
#
# Starts a throwaway PostgreSQL (scripts/postgres.sh, durable as shipped: fsync and
# synchronous_commit on) and three release nodes on it (ports BENCH_NODE_PORT+1..+3,
# default 3921-3923), then for each step runs, back to back, BENCH_ROUNDS times (2):
# SQLite (benches/run-scenario.sh: its own server and database, and this machine's
# bare limits), PostgreSQL with everything on node 1, PostgreSQL spread over the
# three nodes, and, for ingest, bare PostgreSQL (pgbench) inserting the same rows.
# Stops everything and removes the temporary directory at the end.
#
# No load balancer: tether-load spreads its clients over the nodes itself
# (TETHER_LOAD_SUBSCRIBE_URLS, TETHER_LOAD_WRITE_URLS: subscriber or writer i goes to
# the i-th URL in turn), so the figures hold no proxy hop. The nodes not in use in a
# one-node run stay up and idle (they follow no list, so a commit's NOTIFY costs them
# a wake-up and nothing more).
#
# BENCH_SERVER runs the nodes from another server binary (to compare two builds).
# Output: one JSON report per run in BENCH_OUT (target/bench/cluster), the
# generator's tables in its .log files, the nodes' logs (node-N.log; BENCH_NODE_LOG
# sets their TETHER_LOG, e.g. warn,tether::server::sync=debug), and a summary on
# stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${BENCH_OUT:-$root/target/bench/cluster}
rounds=${BENCH_ROUNDS:-2}
node_port=${BENCH_NODE_PORT:-3920}
load=$root/target/release/tether-load
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(ingest fanout fanout1000 connections)
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

dir=$(mktemp -d /tmp/tether-bench-cluster.XXXXXX)
# PostgreSQL runs as the postgres user when this runs as root: it must reach $dir/pg.
chmod 755 "$dir"
nodes=()
cleanup() {
  for pid in "${nodes[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${nodes[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/postgres.sh stop "$dir/pg"
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

node_url() { echo "http://127.0.0.1:$((node_port + $1))"; }
all_nodes="$(node_url 1),$(node_url 2),$(node_url 3)"

start_cluster() {
  scripts/postgres.sh install
  local pg_port
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pg_url=$(scripts/postgres.sh start "$dir/pg" "$pg_port")
  db_url=${pg_url%/postgres}/tether
  for i in 1 2 3; do
    env TETHER_ADDR="127.0.0.1:$((node_port + i))" TETHER_DATABASE_URL="$db_url" \
      TETHER_LOG="${BENCH_NODE_LOG:-warn}" TETHER_SITE_ROOT="$root/target/site" \
      TETHER_MAX_PUSHES_PER_SECOND=1000000 TETHER_MAX_SUBSCRIBERS_PER_LIST=10000 \
      "${BENCH_SERVER:-target/release/tether}" >"$out/node-$i.log" 2>&1 &
    nodes+=($!)
    # The first node creates and migrates the database before the others start.
    [ "$i" = 1 ] && wait_healthy "$(node_url 1)"
  done
  wait_healthy "$(node_url 2)"
  wait_healthy "$(node_url 3)"
  echo "PostgreSQL $db_url; nodes ${nodes[*]} on $all_nodes" >&2
}

wait_healthy() {
  for _ in $(seq 200); do
    curl -sf "$1/healthz" >/dev/null && return
    sleep 0.1
  done
  echo "$1 did not become healthy" >&2
  cat "$out"/node-*.log >&2
  exit 1
}

# run NAME [tether-load flags...]: one generator run against the cluster.
run() {
  local name=$1
  shift
  echo "== $name" >&2
  "$load" --quiet --no-limits --json "$out/$name.json" "$@" >"$out/$name.log" 2>&1 ||
    echo "   $name: tether-load exit $? (see $out/$name.log)" >&2
}

# sqlite NAME SCENARIO [flags...]: the same scenario on SQLite, with the machine's limits.
sqlite() {
  local name=$1
  shift
  echo "== $name" >&2
  BENCH_OUT=$out benches/run-scenario.sh "$@" --quiet >"$out/$name.log" 2>&1 ||
    echo "   $name: exit $? (see $out/$name.log)" >&2
  mv "$out/$1.json" "$out/$name.json" 2>/dev/null || true
}

# Bare PostgreSQL: upserts of Tether's node row shape (36-character uid, list uid,
# kind, a new version, 448 bytes of state) into a copy of its nodes table, in one
# statement per transaction, as Tether's writer stores nodes (the rows are made by
# PostgreSQL itself, so sending them is not counted: an upper bound).
#   bare_pg NAME CLIENTS LOCK ROWS
# CLIENTS connections for 10 s, each upserting ROWS rows per transaction: its own
# 100 (ROWS=100), or all 5,000 (ROWS=5000: one group of 50 pushes); LOCK is
# statement run first in the transaction ("SELECT pg_advisory_xact_lock(1);" to
# commit one after another, as Tether does for the writes of one list).
bare_pg() {
  local name=$1 clients=$2 lock=$3 rows=$4 from
  psql -q -X "$db_url" -v ON_ERROR_STOP=1 <<'SQL' >/dev/null 2>&1
DROP TABLE IF EXISTS bare_nodes;
CREATE TABLE bare_nodes (LIKE nodes INCLUDING ALL);
CREATE SEQUENCE IF NOT EXISTS bare_version;
INSERT INTO bare_nodes (uid, list_uid, kind, version, state)
SELECT 'n-' || c || '-' || g, 'bare', 'todo', nextval('bare_version'), repeat(md5(g::text), 14)
FROM generate_series(1, 50) c, generate_series(1, 100) g;
SQL
  from="(SELECT :client_id + 1) AS x (c), generate_series(1, 100) g"
  [ "$rows" = 5000 ] && from="generate_series(1, 50) c, generate_series(1, 100) g"
  cat >"$dir/bare.sql" <<SQL
BEGIN;
$lock
INSERT INTO bare_nodes (uid, list_uid, kind, version, state)
SELECT 'n-' || c || '-' || g, 'bare', 'todo', nextval('bare_version'),
       repeat(md5(random()::text), 14)
FROM $from
ON CONFLICT (uid, list_uid) DO UPDATE SET kind = excluded.kind, version = excluded.version,
                                state = excluded.state;
COMMIT;
SQL
  echo "== $name" >&2
  pgbench -n -c "$clients" -j "$((clients > 1 ? 2 : 1))" -T 10 -f "$dir/bare.sql" "$db_url" \
    >"$out/$name.log" 2>&1 || echo "   $name: pgbench exit $?" >&2
  echo "rows per transaction: $rows" >>"$out/$name.log"
}

# Idle subscribers spread over the three nodes: each node's VmRSS before, and once
# every socket is following (from each node's /metrics), divided by its own count.
per_node_memory() {
  local name=$1 subscribers=$2
  local base=() i
  # A node gives freed memory back a second after its last subscriber left.
  sleep 3
  for i in 1 2 3; do base+=("$(rss_kb "${nodes[$((i - 1))]}")"); done
  echo "== $name" >&2
  TETHER_LOAD_SUBSCRIBE_URLS=$all_nodes "$load" --quiet --no-limits --url "$(node_url 1)" \
    --scenario connections --subscribers "$subscribers" --settle 10 \
    --json "$out/$name.json" >"$out/$name.log" 2>&1 &
  local gen=$! total=0
  for _ in $(seq 300); do
    total=0
    for i in 1 2 3; do total=$((total + $(following "$(node_url "$i")"))); done
    [ "$total" -ge "$subscribers" ] && break
    sleep 0.1
  done
  sleep 3
  for i in 1 2 3; do
    local now count
    now=$(rss_kb "${nodes[$((i - 1))]}")
    count=$(following "$(node_url "$i")")
    echo "node $i: $count subscribers, VmRSS ${base[$((i - 1))]} -> $now KiB," \
      "$(python3 -c "print(f'{($now - ${base[$((i - 1))]}) / max($count, 1):.2f}')") KiB per subscriber"
  done >"$out/$name.nodes"
  wait "$gen" || echo "   $name: tether-load exit $?" >&2
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
following() {
  curl -sf "$1/metrics" | awk '/^tether_live_subscribers / {n = $2} END {print int(n)}'
}

step_ingest() {
  local r=$1
  sqlite "ingest-sqlite-$r" ingest
  run "ingest-pg1-$r" --url "$(node_url 1)" --scenario ingest --server-pid "${nodes[0]}"
  TETHER_LOAD_WRITE_URLS=$all_nodes run "ingest-pg3-$r" --url "$(node_url 1)" --scenario ingest
  bare_pg "bare-pg-$r" 50 "" 100
  bare_pg "bare-pg-serial-$r" 50 "SELECT pg_advisory_xact_lock(1);" 100
  bare_pg "bare-pg-group-$r" 1 "" 5000
}

# Fan-out: the writer on node 1; every op creates a todo (--op create). With edits
# of one todo (the default, set), a node that reads several commits at once from the
# database sends only the todo's last state, so the superseded edits never reach its
# subscribers (by design) and the generator would count them as missing.
step_fanout() {
  local r=$1
  sqlite "fanout-sqlite-$r" fanout --op create
  run "fanout-pg1-$r" --url "$(node_url 1)" --scenario fanout --op create
  TETHER_LOAD_SUBSCRIBE_URLS=$all_nodes run "fanout-pg3-$r" --url "$(node_url 1)" \
    --scenario fanout --op create
}

# 1,000 subscribers on one list; one writer at 20 ops/s (20,000 deliveries a second).
step_fanout1000() {
  local r=$1 flags=(--subscribers 1000 --rate 20 --op create)
  sqlite "fanout1000-sqlite-$r" fanout "${flags[@]}" --no-limits
  run "fanout1000-pg1-$r" --url "$(node_url 1)" --scenario fanout "${flags[@]}"
  TETHER_LOAD_SUBSCRIBE_URLS=$all_nodes run "fanout1000-pg3-$r" --url "$(node_url 1)" \
    --scenario fanout "${flags[@]}"
}

# 5,000 idle subscribers (1,667 per node when spread), as scenario (d).
step_connections() {
  local r=$1
  sqlite "connections-sqlite-$r" connections --no-limits
  run "connections-pg1-$r" --url "$(node_url 1)" --scenario connections --server-pid "${nodes[0]}"
  per_node_memory "connections-pg3-$r" 5000
}

summary() {
  local f
  printf '%-26s %10s %9s %17s %17s %9s %9s %7s\n' run "field/s" "cpu µs/op" \
    "each p50/p99 ms" "all p50/p99 ms" "push p50" "KiB/sub" errors
  for f in "$out"/*.json; do
    jq -r --arg name "$(basename "$f" .json)" '
      def r(x): if x == null then "-" else (x * 100 | round / 100 | tostring) end;
      [$name, r(.run.field_ops_per_s), r(.run.server_cpu_us_per_op),
       r(.run.fanout.p50_ms) + " / " + r(.run.fanout.p99_ms),
       r(.run.delivery.to_all.p50_ms) + " / " + r(.run.delivery.to_all.p99_ms),
       r(.run.push_latency.p50_ms), r(.server.per_subscriber_kb), (.error_total | tostring)]
      | @tsv' "$f" | awk -F'\t' '{printf "%-26s %10s %9s %17s %17s %9s %9s %7s\n", $1, $2, $3, $4, $5, $6, $7, $8}'
  done
  for f in "$out"/bare-pg-*.log; do
    [ -f "$f" ] && echo "$(basename "$f" .log): $(grep -E '^tps' "$f")," \
      "$(grep -E '^rows per' "$f")"
  done
  for f in "$out"/*.nodes; do
    [ -f "$f" ] && { echo "$(basename "$f" .nodes):"; cat "$f"; }
  done
  return 0
}

start_cluster
for round in $(seq "$rounds"); do
  for step in "${steps[@]}"; do "step_$step" "$round"; done
done
summary
