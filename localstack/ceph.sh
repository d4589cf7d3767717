#!/usr/bin/env bash
# Ceph RGW on one host, for the tests: a monitor, one memstore OSD and radosgw, all on
# 127.0.0.1, all state and logs under $CEPH_DIR (inside $RUN_DIR). No mgr, no Docker, no
# systemd. RGW answers S3 on 127.0.0.1:$RGW_PORT with user test/test and bucket
# $CAIRN_TEST_BUCKET.
#
#   ceph.sh install   apt-get install Debian's Ceph packages, unless already there
#   ceph.sh start     bootstrap a fresh cluster and start it, unless RGW already answers
#   ceph.sh stop      stop the daemons this script started
#
# The OSD keeps objects in memory, so a cluster does not outlive its OSD: start bootstraps
# a new one each time (a few seconds) rather than reviving an old one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

# faketime rides along: the process tests run cairn with skewed clocks (crates/cli/tests/clock_skew.rs).
CEPH_PACKAGES=(ceph-mon ceph-osd radosgw ceph-common faketime)
CEPH_BINARIES=(ceph ceph-authtool monmaptool ceph-mon ceph-osd radosgw radosgw-admin faketime)
CONF="$CEPH_DIR/ceph.conf"
DAEMONS=(rgw osd mon) # stop order

ceph_cli() { timeout 60 ceph -c "$CONF" "$@"; }

rgw_answers() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$RGW_PORT/"; }

show_logs() {
  local f
  for f in "$CEPH_DIR"/log/*.log "$CEPH_DIR"/log/*.out; do
    [ -s "$f" ] || continue
    log "--- last lines of $f:"
    tail -n 30 "$f" >&2
  done
}

fail() {
  log "$*"
  show_logs
  exit 1
}

install_ceph() {
  local b missing=()
  for b in "${CEPH_BINARIES[@]}"; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${CEPH_PACKAGES[*]} from Debian's packages (missing: ${missing[*]})"
  mkdir -p "$CAIRN_TEST_HOME"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  local apt=(timeout 900 "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300)
  local try
  for try in 1 2 3; do
    if "${apt[@]}" update >"$CAIRN_TEST_HOME/apt.log" 2>&1 &&
      "${apt[@]}" install -y --no-install-recommends "${CEPH_PACKAGES[@]}" >>"$CAIRN_TEST_HOME/apt.log" 2>&1; then
      break
    fi
    log "apt-get failed (try $try of 3); its log:"
    tail -n 20 "$CAIRN_TEST_HOME/apt.log" >&2
    [ "$try" -lt 3 ] || exit 1
    sleep 5
  done
  log "installed $(ceph --version)"
}

stop_ceph() {
  local name pidfile pid
  for name in "${DAEMONS[@]}"; do
    pidfile="$RUN_DIR/ceph-$name.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      log "stopped ceph $name ($pid)"
    fi
    rm -f "$pidfile"
  done
}

spawn() { # name command...
  local name=$1; shift
  nohup "$@" -c "$CONF" -f >"$CEPH_DIR/log/$name.out" 2>&1 &
  echo $! >"$RUN_DIR/ceph-$name.pid"
}

alive() { # name
  local pidfile="$RUN_DIR/ceph-$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

wait_until() { # what seconds daemon command...: polls until the command succeeds
  local what=$1 deadline=$((SECONDS + $2)) daemon=$3; shift 3
  until "$@" >/dev/null 2>&1; do
    alive "$daemon" || fail "ceph $daemon exited before $what"
    [ $SECONDS -lt $deadline ] || fail "$what not reached within $2s"
    sleep 0.25
  done
}

write_conf() { # fsid
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon host = v2:127.0.0.1:$CEPH_MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $CEPH_DIR/keyring/\$name.keyring
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
crash dir = $CEPH_DIR/crash
log to stderr = false
err to stderr = false
# One OSD: every pool keeps one copy, with few placement groups, and says nothing of it.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
# A new pool per second is the default pace; bootstrap creates eight.
paxos propose interval = 0.1
debug osd = 0/5

[mon]
mon data = $CEPH_DIR/mon/\$name
mon cluster log file = $CEPH_DIR/log/cluster.log

[osd]
osd data = $CEPH_DIR/osd/\$name
osd objectstore = memstore
memstore device bytes = 1073741824
osd crush update on start = true

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $CEPH_DIR/rgw
EOF
}

bootstrap() {
  rm -rf "$CEPH_DIR"
  mkdir -p "$CEPH_DIR"/{keyring,run,log,crash,mon,osd,rgw}
  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"

  # Keys: the monitors' own, and an admin that the scripts use.
  local k="$CEPH_DIR/keyring"
  ceph-authtool "$k/mon.keyring" --create-keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$k/client.admin.keyring" --create-keyring --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$k/mon.keyring" --import-keyring "$k/client.admin.keyring" >/dev/null

  # The monitor.
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$CEPH_MON_PORT]" "$CEPH_DIR/monmap" \
    >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$k/mon.keyring" \
    >"$CEPH_DIR/log/mon-mkfs.out" 2>&1 || fail "ceph-mon --mkfs failed"
  spawn mon ceph-mon -i a
  wait_until "the monitor answering" 60 mon ceph_cli --connect-timeout 5 mon stat

  # One OSD on memstore.
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  local id
  id=$(ceph_cli osd new "$osd_uuid") || fail "ceph osd new failed"
  mkdir -p "$CEPH_DIR/osd/osd.$id"
  ceph_cli auth get-or-create "osd.$id" mon 'allow profile osd' mgr 'allow profile osd' \
    osd 'allow *' -o "$k/osd.$id.keyring" || fail "creating the OSD key failed"
  ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$osd_uuid" \
    >"$CEPH_DIR/log/osd-mkfs.out" 2>&1 || fail "ceph-osd --mkfs failed"
  spawn osd ceph-osd -i "$id"
  wait_until "the OSD up" 60 osd sh -c "ceph -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.$id up'"

  # radosgw, which creates its pools on first start.
  ceph_cli auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' \
    -o "$k/client.rgw.a.keyring" || fail "creating the RGW key failed"
  spawn rgw radosgw -n client.rgw.a
  wait_until "radosgw answering on 127.0.0.1:$RGW_PORT" 120 rgw rgw_answers

  timeout 60 radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
    --access-key=test --secret-key=test >"$CEPH_DIR/log/user-create.out" 2>&1 \
    || fail "radosgw-admin user create failed"
}

create_bucket() { # started: 1 when this script started the RGW, 0 when one already answered
  local code
  # An RGW that already answered may be another checkout's or a system one: its log folder
  # under $CEPH_DIR need not exist.
  mkdir -p "$CEPH_DIR/log"
  # curl signs with SigV4; RGW also wants the payload hash header, here of the empty body.
  code=$(curl -s -o "$CEPH_DIR/log/bucket-create.out" -w '%{http_code}' -m 30 -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user test:test \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "http://127.0.0.1:$RGW_PORT/$CAIRN_TEST_BUCKET")
  case "$code" in
    200|409) log "bucket $CAIRN_TEST_BUCKET on port $RGW_PORT ready" ;;
    *)
      if [ "$1" = 0 ]; then
        log "an RGW this script did not start answers on 127.0.0.1:$RGW_PORT, and it refused to"
        log "create bucket $CAIRN_TEST_BUCKET for user test/test (HTTP $code); the tests need that"
        log "user and bucket: stop that server, or set RGW_PORT and CEPH_MON_PORT to free ports"
        log "(test.sh points the tests at RGW_PORT)"
      fi
      fail "creating the bucket on RGW answered HTTP $code: $(cat "$CEPH_DIR/log/bucket-create.out")" ;;
  esac
}

start_ceph() {
  local started=0
  if rgw_answers; then
    log "rgw already running on 127.0.0.1:$RGW_PORT (not started here): using it"
  else
    started=1
    install_ceph
    stop_ceph
    mkdir -p "$RUN_DIR"
    log "bootstrapping a single-host Ceph cluster in $CEPH_DIR, RGW on 127.0.0.1:$RGW_PORT"
    local t0=$SECONDS
    bootstrap
    log "rgw ready (http://127.0.0.1:$RGW_PORT) after $((SECONDS - t0))s"
  fi
  create_bucket "$started"
}

case "${1:-}" in
  install) install_ceph ;;
  start) start_ceph ;;
  stop) stop_ceph ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
