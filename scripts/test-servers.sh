#!/usr/bin/env bash
# Start or stop the local MLflow servers that mlflowreg's tests use.
#
#   scripts/test-servers.sh start   stop any servers left from an earlier start,
#                                   start them with fresh state, wait until their
#                                   /health returns 200, write .test-servers/env
#   scripts/test-servers.sh stop    stop them and wait until their processes exit
#
# Servers, all on 127.0.0.1 with a free port, a SQLite backend and proxied
# artifact storage (--serve-artifacts):
#   plain   MLflow's own registry store.
#   strict  the strict registry fixture (tests/fixtures/strict_registry), which
#           rejects a model version whose MLmodel has no python_function flavor
#           with a loader_module key, as Azure ML's registry does.
#   s3      artifacts in an S3 bucket served by moto's server mode (also on
#           127.0.0.1), so the server offers multipart uploads through
#           mlflow-artifacts/mpu. The moto process is started before it and
#           stopped with it; its state is in .test-servers/moto/.
#
# State lives in <repo>/.test-servers/<name>/ (mlflow.db, artifacts/,
# server.log, server.pid, port), and the next `start` deletes it. `start`
# writes <repo>/.test-servers/env with the lines MLFLOWREG_TEST_TRACKING_URI=...
# (plain) and MLFLOWREG_TEST_STRICT_URI=... (strict), for test scripts to
# source, and MLFLOWREG_TEST_S3_URI=... (s3) with MLFLOWREG_TEST_MOTO_URI=...
# (its S3 endpoint). Needs the venv from scripts/setup.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# MLFLOWREG_SERVER_STATE_DIR and MLFLOWREG_SERVERS (names separated by spaces)
# let a caller run only some servers, in a folder of its own.
# MLFLOWREG_SERVER_WORKERS sets each server's uvicorn worker processes
# (default 1; bench/run.sh uses MLflow's own default of 4).
STATE_DIR="${MLFLOWREG_SERVER_STATE_DIR:-$ROOT/.test-servers}"
ENV_FILE="$STATE_DIR/env"
read -r -a SERVER_NAMES <<<"${MLFLOWREG_SERVERS:-plain strict s3}"
# Shared by all servers. Starting plain and strict (imports and SQLite
# migrations) took 7 to 10 s on the 2-core development machine.
START_TIMEOUT_SECONDS=90
STOP_TIMEOUT_SECONDS=20
# Launch attempts per server, for a port taken by another process between the
# free-port probe and the server's bind.
MAX_LAUNCH_ATTEMPTS=3

export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true
# With job execution on, mlflow 3.17.2 starts 8 more processes per server (a
# job runner and huey consumers). No test uses jobs.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

# The s3 server's bucket and the fixed test credentials that moto accepts.
S3_BUCKET=mlflowreg-test
S3_ENV=(
  AWS_ACCESS_KEY_ID=testing
  AWS_SECRET_ACCESS_KEY=testing
  AWS_DEFAULT_REGION=us-east-1
  AWS_EC2_METADATA_DISABLED=true
  MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=true
)

log() {
  printf 'test-servers: %s\n' "$*"
}

server_dir() {
  printf '%s/%s\n' "$STATE_DIR" "$1"
}

# Print N distinct free TCP ports on 127.0.0.1. The sockets stay open until
# all N are chosen, so the ports differ from each other.
free_ports() {
  "$VENV/bin/python" - "$1" <<'EOF'
import socket
import sys

sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
}

# Succeed when process group PGID still has a process started from this
# repo's venv. The check keeps a stale pid file from ever naming an unrelated
# process group that reused the number.
group_is_ours() {
  pgrep -g "$1" -f -- "$VENV/bin/" >/dev/null 2>&1
}

stop_server() {
  local name=$1 dir pid_file pgid waited=0
  dir="$(server_dir "$name")"
  pid_file="$dir/server.pid"
  [ -f "$pid_file" ] || return 0
  pgid="$(cat "$pid_file")"

  if [[ "$pgid" =~ ^[0-9]+$ ]] && group_is_ours "$pgid"; then
    # mlflow forwards SIGTERM to its uvicorn child. Signalling the whole
    # group also reaches a child whose parent already died.
    kill -TERM -- "-$pgid" 2>/dev/null || true
    while group_is_ours "$pgid" && [ "$waited" -lt "$((STOP_TIMEOUT_SECONDS * 10))" ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if group_is_ours "$pgid"; then
      log "$name server (process group $pgid) still running after ${STOP_TIMEOUT_SECONDS} s, sending SIGKILL"
      kill -KILL -- "-$pgid" 2>/dev/null || true
      waited=0
      while group_is_ours "$pgid" && [ "$waited" -lt 50 ]; do
        sleep 0.1
        waited=$((waited + 1))
      done
      if group_is_ours "$pgid"; then
        log "error: $name server (process group $pgid) did not exit after SIGKILL"
        return 1
      fi
    fi
    # The server's parent shell has exited, so the leader's zombie waits for
    # the init process to reap it. Give that up to 5 s so that pgrep right
    # after `stop` shows nothing, but do not fail on it.
    waited=0
    while [ -e "/proc/$pgid" ] && [ "$waited" -lt 50 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    log "stopped $name server (process group $pgid)"
  fi
  rm -f "$pid_file"
}

stop_all() {
  local name status=0
  rm -f "$ENV_FILE"
  for name in "${SERVER_NAMES[@]}"; do
    stop_server "$name" || status=1
  done
  # moto outlives the s3 server in the list above, so it goes last.
  stop_server moto || status=1
  return "$status"
}

wants_s3() {
  local name
  for name in "${SERVER_NAMES[@]}"; do
    [ "$name" = s3 ] && return 0
  done
  return 1
}

# Start moto's S3 server on a free port, wait until it answers and create
# the bucket. Sets MOTO_PORT.
start_moto() {
  local dir deadline
  dir="$(server_dir moto)"
  rm -rf "$dir"
  mkdir -p "$dir"
  MOTO_PORT="$(free_ports 1)"
  env "${S3_ENV[@]}" setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" \
    >"$dir/server.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$dir/server.pid"
  printf '%s\n' "$MOTO_PORT" >"$dir/port"
  deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$MOTO_PORT/moto-api/" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
      log "error: moto's S3 server did not answer on http://127.0.0.1:$MOTO_PORT within 30 s"
      print_log_tail moto
      return 1
    fi
    sleep 0.3
  done
  # moto accepts unsigned requests, so curl can create the bucket.
  curl -fsS -o /dev/null --max-time 10 -X PUT "http://127.0.0.1:$MOTO_PORT/$S3_BUCKET" || {
    log "error: creating bucket $S3_BUCKET on moto failed"
    return 1
  }
  log "moto S3 server ready at http://127.0.0.1:$MOTO_PORT (bucket $S3_BUCKET)"
}

# Launch server NAME on PORT in its own session, so that its pid is also the
# id of a process group that contains the server and its uvicorn worker.
launch_server() {
  local name=$1 port=$2 dir
  dir="$(server_dir "$name")"
  rm -rf "$dir"
  mkdir -p "$dir/artifacts"
  local destination="$dir/artifacts"
  if [ "$name" = s3 ]; then
    destination="s3://$S3_BUCKET/$name"
  fi

  local args=(
    server
    --host 127.0.0.1
    --port "$port"
    --workers "${MLFLOWREG_SERVER_WORKERS:-1}"
    --backend-store-uri "sqlite:///$dir/mlflow.db"
    --serve-artifacts
    --artifacts-destination "$destination"
  )
  local env_args=()
  if [ "$name" = s3 ]; then
    env_args+=("${S3_ENV[@]}" "MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT")
  fi
  if [ "$name" = strict ]; then
    # Same database as the tracking store, opened through the fixture's
    # entry point (URI scheme strict-sqlite).
    args+=(--registry-store-uri "strict-sqlite:///$dir/mlflow.db")
    env_args+=("MLFLOWREG_STRICT_ARTIFACTS_DIR=$dir/artifacts")
    # Where scripts/azure-test-servers.sh later puts the gateway double's CA
    # and service token, read when an azureml:// source is registered.
    env_args+=("MLFLOWREG_STRICT_AZUREML_DIR=$STATE_DIR/azureml")
  fi

  env "${env_args[@]}" setsid "$VENV/bin/mlflow" "${args[@]}" \
    >"$dir/server.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$dir/server.pid"
  printf '%s\n' "$port" >"$dir/port"
}

print_log_tail() {
  local name=$1 log_file
  log_file="$(server_dir "$name")/server.log"
  printf -- '--- last 40 lines of %s ---\n' "$log_file" >&2
  tail -n 40 "$log_file" >&2 || true
  printf -- '--- end of %s ---\n' "$log_file" >&2
}

# Wait until /health of server NAME returns 200, then check that its model
# registry works. Return 0 when both succeed, 2 when the server exited because
# its port was taken, 1 on any other exit, a registry error or the deadline.
wait_for_server() {
  local name=$1 deadline=$2 dir pid port
  dir="$(server_dir "$name")"
  pid="$(cat "$dir/server.pid")"
  port="$(cat "$dir/port")"
  while true; do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null; then
      check_registry "$name" "$port"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      if grep -qi "address already in use" "$dir/server.log"; then
        return 2
      fi
      log "error: $name server exited before http://127.0.0.1:$port/health returned 200"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "error: timed out after ${START_TIMEOUT_SECONDS} s waiting for http://127.0.0.1:$port/health of the $name server"
      return 1
    fi
    sleep 0.5
  done
}

# mlflow server starts and returns 200 on /health even when it cannot build
# its registry store (for example when the fixture's entry point is not
# installed). The first registry request shows such an error.
check_registry() {
  local name=$1 port=$2 url http_code body_file
  url="http://127.0.0.1:$port/api/2.0/mlflow/registered-models/search?max_results=1"
  body_file="$(server_dir "$name")/registry-check.json"
  http_code="$(curl -sS -o "$body_file" -w '%{http_code}' --max-time 30 "$url" 2>&1)" || true
  if [ "$http_code" != 200 ]; then
    log "error: $name server's model registry failed: GET $url returned ${http_code:-no response}: $(head -c 600 "$body_file" 2>/dev/null)"
    return 1
  fi
  rm -f "$body_file"
}

start_all() {
  [ -x "$VENV/bin/mlflow" ] || {
    log "error: $VENV/bin/mlflow not found; run scripts/setup.sh first"
    exit 1
  }
  command -v curl >/dev/null || {
    log "error: curl not found; install the Debian package curl"
    exit 1
  }

  stop_all
  mkdir -p "$STATE_DIR"
  if wants_s3; then
    start_moto || {
      stop_all || true
      exit 1
    }
  fi

  local ports name i deadline attempt status
  read -r -a ports <<<"$(free_ports "${#SERVER_NAMES[@]}")"
  for i in "${!SERVER_NAMES[@]}"; do
    launch_server "${SERVER_NAMES[$i]}" "${ports[$i]}"
  done

  deadline=$((SECONDS + START_TIMEOUT_SECONDS))
  for name in "${SERVER_NAMES[@]}"; do
    attempt=1
    while true; do
      status=0
      wait_for_server "$name" "$deadline" || status=$?
      if [ "$status" -eq 2 ] && [ "$attempt" -lt "$MAX_LAUNCH_ATTEMPTS" ]; then
        attempt=$((attempt + 1))
        log "$name server: port taken, retrying on another port (attempt $attempt of $MAX_LAUNCH_ATTEMPTS)"
        stop_server "$name" || true
        launch_server "$name" "$(free_ports 1)"
        continue
      fi
      break
    done
    if [ "$status" -ne 0 ]; then
      print_log_tail "$name"
      stop_all || true
      exit 1
    fi
    log "$name server ready at http://127.0.0.1:$(cat "$(server_dir "$name")/port") (log: $(server_dir "$name")/server.log)"
  done

  {
    if [ -f "$(server_dir plain)/port" ]; then
      printf 'MLFLOWREG_TEST_TRACKING_URI=http://127.0.0.1:%s\n' "$(cat "$(server_dir plain)/port")"
    fi
    if [ -f "$(server_dir strict)/port" ]; then
      printf 'MLFLOWREG_TEST_STRICT_URI=http://127.0.0.1:%s\n' "$(cat "$(server_dir strict)/port")"
    fi
    if [ -f "$(server_dir s3)/port" ]; then
      printf 'MLFLOWREG_TEST_S3_URI=http://127.0.0.1:%s\n' "$(cat "$(server_dir s3)/port")"
      printf 'MLFLOWREG_TEST_MOTO_URI=http://127.0.0.1:%s\n' "$(cat "$(server_dir moto)/port")"
    fi
  } >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  log "wrote $ENV_FILE"
}

case "${1:-}" in
  start) start_all ;;
  stop) stop_all ;;
  *)
    printf 'usage: %s start|stop\n' "$0" >&2
    exit 2
    ;;
esac
