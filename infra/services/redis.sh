#!/usr/bin/env bash
# A throwaway Redis for tests, run natively: CI and developers' machines cannot pull images.
#   redis.sh start DIR PORT   listen on 127.0.0.1:PORT, pid file and log in DIR
#   redis.sh stop DIR
# No persistence (no RDB, no AOF): queues in tests are disposable.
set -euo pipefail

die() { echo "redis.sh: $*" >&2; exit 1; }

SERVICE=redis PID_FILE=redis.pid
# shellcheck source=infra/services/pidfile.sh
source "$(dirname "$0")/pidfile.sh"

# The process id of the Redis answering on 127.0.0.1:PORT, if any.
served_pid() { redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p'; }

start() {
  local dir=$1 port=$2 pid i
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  mkdir -p "$dir"
  if pid=$(running_pid "$dir"); then
    [[ $(served_pid "$port") == "$pid" ]] || die "already running from $dir (pid $pid), but not on port $port"
  else
    rm -f "$dir/redis.pid"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --dir "$dir" --save '' \
      --appendonly no --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
      || die "could not start on port $port"
  fi
  # Ready when our own process answers PING: another Redis on PORT must not pass for it.
  for ((i = 0; i < 50; i++)); do
    if pid=$(running_pid "$dir") && [[ $(served_pid "$port") == "$pid" ]] \
      && [[ $(redis-cli -h 127.0.0.1 -p "$port" ping) == PONG ]]; then
      echo "redis: ready on 127.0.0.1:$port (log $dir/redis.log)"
      return
    fi
    grep -q 'aborting' "$dir/redis.log" 2>/dev/null && break # e.g. the port is taken
    sleep 0.2
  done
  tail -n 5 "$dir/redis.log" >&2
  die "did not start on 127.0.0.1:$port; see $dir/redis.log"
}

case "${1:-} $#" in
  "start 3") start "$(realpath -m "$2")" "$3" ;;
  "stop 2") stop "$(realpath -m "$2")" ;;
  *) die "usage: redis.sh start DIR PORT | stop DIR" ;;
esac
