#!/usr/bin/env bash
# Azurite, Microsoft's Azure Storage emulator, for the tests: its Blob service only, on
# 127.0.0.1:$AZURITE_PORT, with the well-known emulator account (devstoreaccount1) and a
# container $CAIRN_TEST_BUCKET. Installed from npm into $AZURITE_DIR (needs Node.js and npm;
# no Docker); it keeps blobs in memory, its log in $RUN_DIR/azurite.
#
#   azurite.sh install   npm install the pinned Azurite, unless already there
#   azurite.sh start     start it, unless something already answers on the port; create the container
#   azurite.sh stop      stop the Azurite this script started
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

DATA="$RUN_DIR/azurite"
URL="http://127.0.0.1:$AZURITE_PORT"
# The emulator's published account and key (the same in every Azurite).
ACCOUNT=devstoreaccount1
KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

answers() { curl -s -o /dev/null -m 2 "$URL/"; }

install_azurite() {
  local stamp="azurite@$AZURITE_VERSION"
  if [ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ] && [ "$(cat "$AZURITE_DIR/.cairn-stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  command -v npm >/dev/null || { log "npm not found: Azurite needs Node.js and npm"; exit 1; }
  log "installing $stamp into $AZURITE_DIR"
  rm -rf "$AZURITE_DIR"
  mkdir -p "$AZURITE_DIR"
  npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error "$stamp" >&2
  echo "$stamp" >"$AZURITE_DIR/.cairn-stamp"
}

# Creates the container with a request signed by the emulator account's key (Shared Key).
create_container() {
  local code
  code=$(ACCOUNT=$ACCOUNT KEY=$KEY URL=$URL CONTAINER=$CAIRN_TEST_BUCKET node -e '
    const crypto = require("crypto"), http = require("http");
    const { ACCOUNT, KEY, URL, CONTAINER } = process.env;
    const date = new Date().toUTCString(), version = "2021-08-06";
    const path = `/${ACCOUNT}/${CONTAINER}`;
    const toSign = ["PUT", "", "", "", "", "", "", "", "", "", "", "",
      `x-ms-date:${date}\nx-ms-version:${version}`,
      `/${ACCOUNT}${path}\nrestype:container`].join("\n");
    const sig = crypto.createHmac("sha256", Buffer.from(KEY, "base64")).update(toSign, "utf8").digest("base64");
    const req = http.request(`${URL}${path}?restype=container`, { method: "PUT", headers: {
      "x-ms-date": date, "x-ms-version": version, "Content-Length": 0,
      "Authorization": `SharedKey ${ACCOUNT}:${sig}`,
    }}, (res) => { res.resume(); console.log(res.statusCode); });
    req.on("error", (e) => { console.log("000"); console.error(e.message); });
    req.end();
  ')
  case "$code" in
    201|409) log "container $CAIRN_TEST_BUCKET on port $AZURITE_PORT ready" ;;
    *) log "creating the container on Azurite answered HTTP $code"; tail -n 20 "$DATA/azurite.log" >&2 2>/dev/null; exit 1 ;;
  esac
}

start_azurite() {
  if answers; then
    log "something already answers on port $AZURITE_PORT; using it as Azurite"
  else
    install_azurite
    # Azurite's blob GC runs a mark and sweep over every blob at start and then every 10
    # minutes. A sweep that meets writes in flight holds its one thread for tens of seconds,
    # answering nothing: 37 s and about 30 s in two CI runs, both ten minutes after start (in
    # the Azurite turn-process test, which failed each time), and 40 to 58 s in three runs of
    # `cairn bench --scale 5000` with the interval at 20 s, each at the first sweep after 20 s.
    # With the sweep put off to once a day, the same bench ran 110,478 requests over six
    # minutes without a pause over 3 s. A test run deletes nothing worth reclaiming, and the
    # constant is the only setting (there is no flag), so it is changed where it is defined.
    local constants="$AZURITE_DIR/node_modules/azurite/dist/src/blob/utils/constants.js"
    sed -i 's/^exports.DEFAULT_GC_INTERVAL_MS = 10 \* 60 \* 1000;$/exports.DEFAULT_GC_INTERVAL_MS = 24 * 60 * 60 * 1000;/' "$constants"
    if ! grep -q '^exports.DEFAULT_GC_INTERVAL_MS = 24 \* 60 \* 60 \* 1000;$' "$constants"; then
      log "cannot put off Azurite's blob GC ($constants changed); its sweeps stall it under load"
      exit 1
    fi
    mkdir -p "$DATA"
    log "starting azurite on 127.0.0.1:$AZURITE_PORT"
    # --loose: ignore headers Azurite does not implement; --skipApiVersionCheck: accept the
    # API version object_store sends, whatever Azurite release this is.
    # --inMemoryPersistence: nothing on disk, as the RGW's memstore; a restart starts empty.
    (
      cd "$DATA"
      nohup "$AZURITE_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
        --inMemoryPersistence --loose --skipApiVersionCheck --disableTelemetry \
        >"$DATA/azurite.log" 2>&1 &
      echo $! >"$RUN_DIR/azurite.pid"
    )
    local i
    for ((i = 0; i < 300; i++)); do
      if answers; then break; fi
      if ! kill -0 "$(cat "$RUN_DIR/azurite.pid")" 2>/dev/null; then
        log "azurite exited; its log:"; tail -n 40 "$DATA/azurite.log" >&2; exit 1
      fi
      sleep 0.1
    done
    answers || { log "azurite did not answer within 30s; its log:"; tail -n 40 "$DATA/azurite.log" >&2; exit 1; }
    log "azurite ready ($URL)"
  fi
  create_container
}

stop_azurite() {
  local pidfile="$RUN_DIR/azurite.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped azurite ($pid)"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install_azurite ;;
  start) start_azurite ;;
  stop) stop_azurite ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
