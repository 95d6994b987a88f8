#!/usr/bin/env bash
# `make cluster`: a throwaway PostgreSQL, three Tether nodes and nginx in front of
# them on http://127.0.0.1:3000 (docs/DEPLOYMENT.md). Ctrl-C stops everything and
# removes the temporary directory.
#
# Expects the release build and nginx (`make cluster` installs and builds them first).
# Ports: nginx 3000 (CLUSTER_PORT), nodes 3101-3103 (CLUSTER_NODES of them),
# PostgreSQL on a free port. CLUSTER_BINARY runs another build (e.g. target/debug/tether).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${CLUSTER_NODES:-3}
PORT=${CLUSTER_PORT:-3000}
BINARY=${CLUSTER_BINARY:-target/release/tether}
SITE=${TETHER_SITE_ROOT:-$PWD/target/site}

nginx_conf() {
  local dir=$1 servers=""
  for i in $(seq 1 "$NODES"); do
    servers+="    server 127.0.0.1:$((3100 + i)) max_fails=1 fail_timeout=3s;"$'\n'
  done
  cat <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log $dir/nginx-access.log;
  client_body_temp_path $dir/nginx-body;
  proxy_temp_path $dir/nginx-proxy;
  fastcgi_temp_path $dir/nginx-fastcgi;
  uwsgi_temp_path $dir/nginx-uwsgi;
  scgi_temp_path $dir/nginx-scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream tether {
$servers  }
  server {
    listen 127.0.0.1:$PORT;
    client_max_body_size 2m;
    location / {
      proxy_pass http://tether;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_read_timeout 1h;
      # A node that is down or answers 503 (its /healthz would too): try the next.
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries $NODES;
    }
  }
}
CONF
}

main() {
  [ -x "$BINARY" ] || { echo "no $BINARY: run 'make cluster' (it builds first)"; exit 1; }
  scripts/postgres.sh install
  command -v nginx >/dev/null || { echo "no nginx: run 'make cluster' (it installs it)"; exit 1; }
  DIR=$(mktemp -d /tmp/tether-cluster.XXXXXX)
  chmod 755 "$DIR"   # PostgreSQL runs as its own user and must reach its folder in here
  PIDS=()
  trap 'cleanup' EXIT
  trap 'exit 130' INT TERM
  local pg_port url
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  url=$(scripts/postgres.sh start "$DIR/pg" "$pg_port")
  url=${url%/postgres}/tether
  for i in $(seq 1 "$NODES"); do
    TETHER_ADDR=127.0.0.1:$((3100 + i)) TETHER_DATABASE_URL=$url TETHER_SITE_ROOT=$SITE \
      TETHER_LOG=${TETHER_LOG:-info} "$BINARY" >"$DIR/node-$i.log" 2>&1 &
    PIDS+=($!)
    # The first node creates and migrates the database before the others start.
    [ "$i" = 1 ] && wait_healthy 3101
  done
  for i in $(seq 2 "$NODES"); do wait_healthy $((3100 + i)); done
  nginx_conf "$DIR" >"$DIR/nginx.conf"
  nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
  cat <<MSG
Tether cluster: http://127.0.0.1:$PORT (nginx -> $NODES nodes on PostgreSQL). Ctrl-C stops it.
  PostgreSQL  $url   log: $DIR/pg/postgres.log
$(for i in $(seq 1 "$NODES"); do echo "  node $i      http://127.0.0.1:$((3100 + i))   log: $DIR/node-$i.log"; done)
  nginx       http://127.0.0.1:$PORT   logs: $DIR/nginx-access.log, $DIR/nginx-error.log
MSG
  wait -n "${PIDS[@]}" || true
  echo "a part of the cluster stopped; stopping the rest"
}

wait_healthy() {
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "node on port $1 did not become healthy; its log:"; cat "$DIR"/node-*.log; exit 1
}

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/postgres.sh stop "$DIR/pg"
  rm -rf "$DIR"
  echo "cluster stopped"
}

main "$@"
