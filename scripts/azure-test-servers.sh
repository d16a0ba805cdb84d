#!/usr/bin/env bash
# Start or stop the Azure ML stand-ins that mlflowreg's tests use:
#
#   scripts/azure-test-servers.sh start   stop any left from an earlier start, start
#                                         Azurite and the gateway double with fresh
#                                         state, wait until both respond, write
#                                         .test-servers/azureml/env
#   scripts/azure-test-servers.sh stop    stop both and wait until their processes exit
#
# Azurite (the npm package, installed into .azurite by scripts/setup.sh) is the
# blob endpoint, on 127.0.0.1 with a free port, in-memory storage,
# --disableTelemetry (it reports usage to an outside host otherwise) and
# --silent (its access log would show SAS query strings).
#
# The gateway double (tests/fixtures/azureml_gateway) serves the workspace's
# MLflow and run-history routes over TLS on 127.0.0.1, forwarding MLflow calls
# to the strict registry server, so `start` needs MLFLOWREG_TEST_STRICT_URI,
# which scripts/test-servers.sh writes to .test-servers/env. Its certificate is
# signed by a throwaway CA made here with openssl; clients trust it through
# MLFLOW_TRACKING_SERVER_CERT_PATH.
#
# The env file holds:
#   MLFLOWREG_TEST_AZUREML_URI      azureml:// tracking URI of the double's workspace
#   MLFLOWREG_TEST_AZUREML_CA       the CA certificate (PEM) of the double
#   MLFLOWREG_TEST_AZUREML_CONTROL  http:// URL of the double's test controls
#   MLFLOWREG_TEST_AZUREML_SECRETS  file listing every token and SAS signature handed out
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STATE_DIR="${MLFLOWREG_SERVER_STATE_DIR:-$ROOT/.test-servers}"
DIR="$STATE_DIR/azureml"
ENV_FILE="$DIR/env"
AZURITE="$ROOT/.azurite/node_modules/.bin/azurite-blob"
GATEWAY="$ROOT/tests/fixtures/azureml_gateway/azureml_gateway.py"
START_TIMEOUT_SECONDS=60
STOP_TIMEOUT_SECONDS=20
SUBSCRIPTION=00000000-0000-0000-0000-000000000000
RESOURCE_GROUP=rg-mlflowreg-test
WORKSPACE=ws-mlflowreg-test

log() {
  printf 'azure-test-servers: %s\n' "$*"
}

# Succeed when process group PGID still has a process started from this repo,
# so a stale pid file never names an unrelated process group.
group_is_ours() {
  pgrep -g "$1" -f -- "$ROOT/" >/dev/null 2>&1
}

stop_one() {
  local name=$1 pid_file pgid waited=0
  pid_file="$DIR/$name.pid"
  [ -f "$pid_file" ] || return 0
  pgid="$(cat "$pid_file")"
  if [[ "$pgid" =~ ^[0-9]+$ ]] && group_is_ours "$pgid"; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    while group_is_ours "$pgid" && [ "$waited" -lt "$((STOP_TIMEOUT_SECONDS * 10))" ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if group_is_ours "$pgid"; then
      log "$name (process group $pgid) still running after ${STOP_TIMEOUT_SECONDS} s, sending SIGKILL"
      kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    log "stopped $name (process group $pgid)"
  fi
  rm -f "$pid_file"
}

stop_all() {
  rm -f "$ENV_FILE"
  stop_one gateway
  stop_one azurite
}

free_ports() {
  "$VENV/bin/python" - "$1" <<'PY'
import socket
import sys

sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# A CA and a server certificate for 127.0.0.1 signed by it. rustls rejects a
# self-signed CA certificate used as the server's own, hence two.
make_certificates() {
  local ext="$DIR/gateway.ext"
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$ext"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=mlflowreg test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$DIR/ca.key" -out "$DIR/ca.pem" >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$DIR/gateway.key" -out "$DIR/gateway.csr" >/dev/null 2>&1
  openssl x509 -req -in "$DIR/gateway.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
    -days 2 -extfile "$ext" -out "$DIR/gateway.pem" >/dev/null 2>&1
  chmod 600 "$DIR/ca.key" "$DIR/gateway.key"
}

# Wait until COMMAND succeeds, the process group in PID_FILE dies, or the deadline passes.
wait_until() {
  local name=$1 deadline=$2 pid
  shift 2
  pid="$(cat "$DIR/$name.pid")"
  while ! "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "error: $name exited during start-up; last lines of $DIR/$name.log:"
      tail -n 30 "$DIR/$name.log" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "error: $name did not respond within ${START_TIMEOUT_SECONDS} s; last lines of $DIR/$name.log:"
      tail -n 30 "$DIR/$name.log" >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

azurite_answers() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/devstoreaccount1?comp=list")"
  [ "$code" != 000 ]
}

start_all() {
  [ -x "$AZURITE" ] || { log "error: $AZURITE not found; run scripts/setup.sh first"; exit 1; }
  [ -x "$VENV/bin/python" ] || { log "error: $VENV not found; run scripts/setup.sh first"; exit 1; }
  command -v openssl >/dev/null || { log "error: openssl not found; install the Debian package openssl"; exit 1; }
  if [ -z "${MLFLOWREG_TEST_STRICT_URI:-}" ] && [ -f "$STATE_DIR/env" ]; then
    MLFLOWREG_TEST_STRICT_URI="$(sed -n 's/^MLFLOWREG_TEST_STRICT_URI=//p' "$STATE_DIR/env")"
  fi
  [ -n "${MLFLOWREG_TEST_STRICT_URI:-}" ] || {
    log "error: MLFLOWREG_TEST_STRICT_URI is not set; start scripts/test-servers.sh first"
    exit 1
  }

  stop_all
  rm -rf "$DIR"
  mkdir -p "$DIR"
  make_certificates

  local ports azurite_port gateway_port control_port deadline
  read -r azurite_port gateway_port control_port <<<"$(free_ports 3)"
  deadline=$((SECONDS + START_TIMEOUT_SECONDS))

  setsid "$AZURITE" --blobHost 127.0.0.1 --blobPort "$azurite_port" --inMemoryPersistence \
    --disableTelemetry --silent >"$DIR/azurite.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$DIR/azurite.pid"
  wait_until azurite "$deadline" azurite_answers "$azurite_port" || { stop_all; exit 1; }
  log "Azurite ready at http://127.0.0.1:$azurite_port/devstoreaccount1 (log: $DIR/azurite.log)"

  MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true setsid "$VENV/bin/python" "$GATEWAY" \
    --port "$gateway_port" --control-port "$control_port" \
    --cert "$DIR/gateway.pem" --key "$DIR/gateway.key" \
    --mlflow-uri "$MLFLOWREG_TEST_STRICT_URI" \
    --blob-endpoint "http://127.0.0.1:$azurite_port/devstoreaccount1" \
    --state-dir "$DIR" --subscription "$SUBSCRIPTION" --resource-group "$RESOURCE_GROUP" \
    --workspace "$WORKSPACE" >"$DIR/gateway.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$DIR/gateway.pid"
  wait_until gateway "$deadline" curl -fsS --max-time 2 "http://127.0.0.1:$control_port/health" \
    || { stop_all; exit 1; }
  log "gateway double ready at https://127.0.0.1:$gateway_port (log: $DIR/gateway.log)"

  {
    printf 'MLFLOWREG_TEST_AZUREML_URI=azureml://127.0.0.1:%s/mlflow/v1.0/subscriptions/%s/resourceGroups/%s/providers/Microsoft.MachineLearningServices/workspaces/%s\n' \
      "$gateway_port" "$SUBSCRIPTION" "$RESOURCE_GROUP" "$WORKSPACE"
    printf 'MLFLOWREG_TEST_AZUREML_CA=%s\n' "$DIR/ca.pem"
    printf 'MLFLOWREG_TEST_AZUREML_CONTROL=http://127.0.0.1:%s\n' "$control_port"
    printf 'MLFLOWREG_TEST_AZUREML_SECRETS=%s\n' "$DIR/issued-secrets"
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
