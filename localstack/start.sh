#!/usr/bin/env bash
# Starts LocalStack (S3, host mode) on 127.0.0.1:$LOCALSTACK_PORT, moto on 127.0.0.1:$MOTO_PORT,
# Ceph RGW on 127.0.0.1:$RGW_PORT (ceph.sh) and Azurite on 127.0.0.1:$AZURITE_PORT (azurite.sh),
# waits until each answers, and creates the test bucket (container) on each. Installs them first if needed.
# Safe to run twice: a server that already answers is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
"$here/install.sh"
mkdir -p "$RUN_DIR"

wait_for() { # name url seconds
  local name=$1 url=$2 limit=$3 i
  for ((i = 0; i < limit * 10; i++)); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then log "$name ready ($url)"; return 0; fi
    sleep 0.1
  done
  log "$name did not become ready within ${limit}s; its log:"
  tail -n 40 "$RUN_DIR/$name.log" >&2 || true
  return 1
}

start_localstack() {
  if curl -fsS -o /dev/null "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health" 2>/dev/null; then
    log "localstack already running"; return 0
  fi
  log "starting localstack on 127.0.0.1:$LOCALSTACK_PORT"
  (
    cd "$RUN_DIR"
    export SERVICES=s3 GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" LOCALSTACK_HOST="127.0.0.1:$LOCALSTACK_PORT" \
      EAGER_SERVICE_LOADING=1 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 LOCALSTACK_TELEMETRY=0 \
      DISABLE_CORS_CHECKS=1 PERSISTENCE=0 LS_LOG=warn \
      LOCALSTACK_VOLUME_DIR="$RUN_DIR/localstack-volume" FILESYSTEM_ROOT="$RUN_DIR/localstack-fs"
    nohup "$LS_VENV/bin/python" "$here/run_localstack.py" >"$RUN_DIR/localstack.log" 2>&1 &
    echo $! >"$RUN_DIR/localstack.pid"
  )
  wait_for localstack "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health" 120
}

start_moto() {
  if curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" 2>/dev/null; then
    log "moto already running"; return 0
  fi
  log "starting moto on 127.0.0.1:$MOTO_PORT"
  nohup "$MOTO_VENV/bin/python" -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$RUN_DIR/moto.log" 2>&1 &
  echo $! >"$RUN_DIR/moto.pid"
  wait_for moto "http://127.0.0.1:$MOTO_PORT/moto-api/" 60
}

create_bucket() { # port
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$1/$CAIRN_TEST_BUCKET")
  case "$code" in
    200|409) log "bucket $CAIRN_TEST_BUCKET on port $1 ready" ;;
    *) log "creating bucket on port $1 answered HTTP $code"; return 1 ;;
  esac
}

start_localstack
start_moto
create_bucket "$LOCALSTACK_PORT"
create_bucket "$MOTO_PORT"
"$here/ceph.sh" start
"$here/azurite.sh" start
