#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and `make cluster`, from Debian's packages.
#
#   scripts/postgres.sh install            installs the server binaries if missing
#   scripts/postgres.sh start DIR PORT     initdb + start in DIR (a new directory),
#                                          listening on 127.0.0.1:PORT only
#   scripts/postgres.sh restart DIR        fast restart (the tests use it)
#   scripts/postgres.sh stop DIR           stops it and removes DIR
#   scripts/postgres.sh run CMD...         install, start on a free port in a temporary
#                                          directory, run CMD with TETHER_TEST_POSTGRES
#                                          set (its URL), then stop and remove the
#                                          cluster, whatever CMD did
#
# PostgreSQL refuses to run as root (CI runs as root): every server command goes
# through the `postgres` user. Trust authentication on loopback: a throwaway cluster
# only, never a real one.
set -euo pipefail

bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  local bin
  bin=$(bin_dir)
  if [ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then return; fi
  echo "installing PostgreSQL from Debian's packages"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

start() {
  local dir=$1 port=$2 bin
  bin=$(bin_dir)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1
  # Durable as shipped (fsync on); enough connections for many test servers at once.
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400" start >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

restart() {
  local dir=$1
  as_postgres "$(bin_dir)/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -m fast -w restart >/dev/null
}

stop() {
  local dir=$1
  if [ -d "$dir/data" ]; then
    as_postgres "$(bin_dir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run() {
  install
  local port url status=0
  PG_DIR=$(mktemp -d /tmp/tether-pg.XXXXXX)
  local dir=$PG_DIR
  port=$(free_port)
  trap 'stop "$PG_DIR"' EXIT
  trap 'exit 130' INT TERM
  url=$(start "$dir" "$port")
  echo "throwaway PostgreSQL at $url (log: $dir/postgres.log)"
  TETHER_TEST_POSTGRES=$url "$@" || status=$?
  return $status
}

cmd=${1:-}
shift || true
case "$cmd" in
  install) install ;;
  start) start "$@" ;;
  restart) restart "$@" ;;
  stop) stop "$@" ;;
  run) run "$@" ;;
  *) echo "usage: $0 install | start DIR PORT | restart DIR | stop DIR | run CMD..." >&2; exit 2 ;;
esac
