#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for tests, run natively: CI and developers' machines cannot pull images.
#   postgres.sh start DIR PORT   initialise DIR if new, listen on 127.0.0.1:PORT, create drb_test
#   postgres.sh stop DIR
# Trust authentication on loopback only, and durability off (fsync etc.): this is test data.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB_NAME=drb_test

die() { echo "postgres.sh: $*" >&2; exit 1; }

# The server refuses to run as root: as root, run it as the postgres user; otherwise as ourselves.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

start() {
  local dir=$1 port=$2
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  [[ -x $PG_BIN/initdb ]] || die "no PostgreSQL 15 under $PG_BIN (apt-get install postgresql-15)"
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd -r -m postgres
  fi
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
  as_pg test -w "$dir" || die "user postgres cannot write $dir (is a parent directory private?)"
  local data=$dir/data sock=$dir/sock log=$dir/postgres.log
  as_pg mkdir -p "$sock"

  if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # Line 4 of postmaster.pid is the port the running server listens on.
    local running
    running=$(sed -n 4p "$data/postmaster.pid")
    [[ $running == "$port" ]] || die "already running from $dir on port $running, not $port"
  else
    if [[ ! -f $data/PG_VERSION ]]; then
      as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || die "initdb failed; see $dir/initdb.log"
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 30 -o "-c listen_addresses=127.0.0.1 -p $port -k $sock \
-c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null \
      || { tail -n 5 "$log" >&2; die "could not start on port $port; see $log"; }
  fi

  local i
  for ((i = 0; i < 30; i++)); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 1
  done
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" || die "not ready on 127.0.0.1:$port after 30 s; see $log"

  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qtAX -v ON_ERROR_STOP=1)
  if [[ -z $("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
    "${psql[@]}" -c "CREATE DATABASE $DB_NAME" >/dev/null
  fi
  echo "postgres: ready on 127.0.0.1:$port, database $DB_NAME (log $log)"
}

stop() {
  local data=$1/data
  if [[ -d $data ]] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null || die "could not stop the server in $1"
    echo "postgres: stopped ($1)"
  else
    echo "postgres: not running ($1)"
  fi
}

case "${1:-} $#" in
  "start 3") [[ $2 != *[[:space:]]* ]] || die "DIR must not contain spaces"
             start "$(realpath -m "$2")" "$3" ;;
  "stop 2") stop "$(realpath -m "$2")" ;;
  *) die "usage: postgres.sh start DIR PORT | stop DIR" ;;
esac
