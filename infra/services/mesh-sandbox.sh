#!/usr/bin/env bash
# A throwaway MESH (mesh-sandbox, NHS England's MESH API for local testing) for tests, run natively.
#   mesh-sandbox.sh start DIR PORT   serve on 127.0.0.1:PORT; pid file and log in DIR
#   mesh-sandbox.sh stop DIR
# It runs from its own venv, .venv-mesh (`make .venv-mesh/bin/uvicorn`; MESH_VENV overrides),
# through infra/mesh/launch.py, which loads our mailboxes and workflows (infra/mesh/data/).
# Messages are kept in memory only (STORE_MODE=memory). Passwords are checked for real
# (AUTH_MODE=full: HMAC with SHARED_KEY, default drb-sandbox-key; every mailbox's password is
# "password"), so that a test can see wrong credentials refused; AUTH_MODE=none accepts any.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MESH_VENV=${MESH_VENV:-$ROOT/.venv-mesh}
export STORE_MODE=memory
export AUTH_MODE=${AUTH_MODE:-full}
export SHARED_KEY=${SHARED_KEY:-drb-sandbox-key}

die() { echo "mesh-sandbox.sh: $*" >&2; exit 1; }

SERVICE=mesh-sandbox PID_FILE=mesh.pid
# shellcheck source=infra/services/pidfile.sh
source "$ROOT/infra/services/pidfile.sh"

# The build label that the sandbox on 127.0.0.1:PORT reports (it is ours if it matches DIR/label).
served_label() {
  "$MESH_VENV/bin/python" - "$1" <<'EOF' 2>/dev/null
import json, sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/messageexchange/_ping"
with urllib.request.urlopen(url, timeout=2) as response:
    print(json.load(response).get("build_label", ""))
EOF
}

start() {
  local dir=$1 port=$2 pid label i
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  [[ -x $MESH_VENV/bin/python ]] || die "no mesh-sandbox venv at $MESH_VENV (make .venv-mesh/bin/uvicorn)"
  mkdir -p "$dir"
  if pid=$(running_pid "$dir"); then
    [[ $(served_label "$port") == "$(cat "$dir/label" 2>/dev/null)" ]] \
      || die "already running from $dir (pid $pid), but not on port $port"
    echo "mesh-sandbox: already running on 127.0.0.1:$port (pid $pid)"
    return
  fi
  # A label of our own, reported by the sandbox's _ping: another server on PORT cannot pass for it.
  label="drb-$$-$RANDOM$RANDOM"
  echo "$label" >"$dir/label"
  rm -f "$dir/mesh.pid"
  BUILD_LABEL=$label nohup "$MESH_VENV/bin/python" "$ROOT/infra/mesh/launch.py" \
    --host 127.0.0.1 --port "$port" </dev/null >"$dir/mesh.log" 2>&1 &
  echo $! >"$dir/mesh.pid"
  for ((i = 0; i < 100; i++)); do
    pid=$(running_pid "$dir") || break # it exited: e.g. the port is taken
    if [[ $(served_label "$port") == "$label" ]]; then
      echo "mesh-sandbox: ready on 127.0.0.1:$port, AUTH_MODE=$AUTH_MODE (pid $pid, log $dir/mesh.log)"
      return
    fi
    sleep 0.2
  done
  tail -n 5 "$dir/mesh.log" >&2
  if pid=$(running_pid "$dir"); then kill "$pid"; fi
  die "did not start on 127.0.0.1:$port; see $dir/mesh.log"
}

case "${1:-} $#" in
  "start 3") start "$(realpath -m "$2")" "$3" ;;
  "stop 2") stop "$(realpath -m "$2")" ;;
  *) die "usage: mesh-sandbox.sh start DIR PORT | stop DIR" ;;
esac
