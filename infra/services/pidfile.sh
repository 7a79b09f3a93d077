# shellcheck shell=bash
# Sourced by redis.sh and mesh-sandbox.sh: a service whose process id is kept in DIR/$PID_FILE.
# The sourcing script sets SERVICE (its name in messages) and PID_FILE, and defines die().

# The pid in DIR/$PID_FILE, if that process is alive.
running_pid() {
  local pid
  [[ -f $1/$PID_FILE ]] || return 1
  pid=$(<"$1/$PID_FILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Stop the service started from DIR, waiting up to 10 s for it to exit.
stop() {
  local dir=$1 pid i
  if ! pid=$(running_pid "$dir"); then
    echo "$SERVICE: not running ($dir)"
    return
  fi
  kill "$pid"
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  ! kill -0 "$pid" 2>/dev/null || die "pid $pid did not stop within 10 s"
  rm -f "$dir/$PID_FILE"
  echo "$SERVICE: stopped ($dir)"
}
