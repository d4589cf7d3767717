#!/usr/bin/env bash
# Whole-process comparison: `cairn lock run X -- true` on LocalStack (release build, the
# default --strategy auto, on a prefix whose protocol record already exists) against
# `etcdctl lock X -- true` on a loopback etcd, run alternately; then the requests each CLI
# command sends, counted on the wire by a logging proxy (count_requests.py) in front of
# LocalStack. A measurement, run by hand; not part of the test suite.
#
#   localstack/compare-etcd.sh            # RUNS=31 rounds by default
#   RUNS=51 localstack/compare-etcd.sh
#   CAIRN_BASELINE=/tmp/cairn-old localstack/compare-etcd.sh   # adds another build's row,
#                                                               # alternated with the rest
#
# Needs LocalStack answering on $LOCALSTACK_PORT (localstack/start.sh) with bucket
# $CAIRN_TEST_BUCKET, python3, and etcd + etcdctl: installed from Debian's packages
# (etcd-server, etcd-client) with apt-get when missing. etcd runs on 127.0.0.1 with a
# temporary data directory, and is stopped (and the directory removed) at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/env.sh"

RUNS=${RUNS:-31}
ENDPOINT=${CAIRN_COMPARE_ENDPOINT:-http://127.0.0.1:$LOCALSTACK_PORT}
CAIRN=${CAIRN:-$root/target/release/cairn}
CAIRN_BASELINE=${CAIRN_BASELINE:-}

fail() {
  log "$*"
  exit 1
}

install_etcd() {
  command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 && return 0
  log "installing etcd-server and etcd-client from Debian's packages"
  mkdir -p "$CAIRN_TEST_HOME"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  local apt=(timeout 600 "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=120)
  if ! { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends etcd-server etcd-client; } \
    >"$CAIRN_TEST_HOME/apt-etcd.log" 2>&1; then
    tail -n 20 "$CAIRN_TEST_HOME/apt-etcd.log" >&2
    fail "etcd is not available: apt-get install etcd-server etcd-client failed (log above); install etcd and etcdctl by hand and run again"
  fi
  command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 ||
    fail "etcd-server / etcd-client installed no etcd or etcdctl on PATH"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

command -v python3 >/dev/null 2>&1 || fail "python3 is needed (timing and the counting proxy)"
curl -s -o /dev/null -m 5 "$ENDPOINT/" || fail "no S3 server answers at $ENDPOINT: start it with localstack/start.sh"
install_etcd
log "building the release binary"
(cd "$root" && cargo build --release -q)

tmp=$(mktemp -d)
etcd_pid=
proxy_pid=
cleanup() {
  local p
  for p in $proxy_pid $etcd_pid; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

client_port=$(free_port)
peer_port=$(free_port)
export ETCDCTL_API=3
ETCD_ENDPOINT=127.0.0.1:$client_port
etcd --name compare --data-dir "$tmp/etcd" \
  --listen-client-urls "http://$ETCD_ENDPOINT" --advertise-client-urls "http://$ETCD_ENDPOINT" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "compare=http://127.0.0.1:$peer_port" >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 1 100); do
  etcdctl --endpoints="$ETCD_ENDPOINT" endpoint health >/dev/null 2>&1 && break
  kill -0 "$etcd_pid" 2>/dev/null || { tail -n 20 "$tmp/etcd.log" >&2; fail "etcd exited"; }
  sleep 0.2
done
etcdctl --endpoints="$ETCD_ENDPOINT" endpoint health >/dev/null 2>&1 || fail "etcd did not become healthy in 20 s"

export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL=$ENDPOINT
stamp=$(date +%s)-$$
prefix="s3://$CAIRN_TEST_BUCKET/compare-etcd/$stamp"

echo "cairn $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(etcd --version | head -n 1), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "store $prefix (LocalStack at $ENDPOINT); etcd at $ETCD_ENDPOINT"
# The first call on the prefix probes the store and creates its protocol record; the
# measured calls find it (one GET), as every later call on a prefix in use does.
"$CAIRN" --store "$prefix" lock run X -- true
etcdctl --endpoints="$ETCD_ENDPOINT" lock X -- true >/dev/null

echo
echo "## Whole process, $RUNS alternating rounds (wall time from fork to exit)"
echo
python3 - "$RUNS" "$CAIRN" "$prefix" "$ETCD_ENDPOINT" "$CAIRN_BASELINE" <<'EOF'
import math, statistics, subprocess, sys, time
runs, cairn, prefix, etcd, baseline = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
cmds = [
    ("cairn lock run X -- true (auto)", [cairn, "--store", prefix, "lock", "run", "X", "--", "true"]),
    ("etcdctl lock X -- true", ["etcdctl", f"--endpoints={etcd}", "lock", "X", "--", "true"]),
    ("cairn --strategy etag-cas lock run X -- true",
     [cairn, "--store", prefix, "--strategy", "etag-cas", "lock", "run", "X", "--", "true"]),
]
if baseline:
    cmds.append((f"baseline {baseline} lock run X -- true (auto)",
                 [baseline, "--store", prefix, "lock", "run", "X", "--", "true"]))
times = {name: [] for name, _ in cmds}
for i in range(runs):
    # Rotate the order each round, so no command always runs right after another.
    for name, argv in cmds[i % len(cmds):] + cmds[:i % len(cmds)]:
        t = time.perf_counter()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times[name].append((time.perf_counter() - t) * 1e3)
        if r.returncode != 0:
            sys.exit(f"{name} exited {r.returncode}: {r.stderr.decode()}")
def p(xs, q):
    xs = sorted(xs)
    return xs[max(0, math.ceil(q * len(xs)) - 1)]
print("| command | median | p90 | min | max |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, _ in cmds:
    xs = times[name]
    print(f"| {name} | {statistics.median(xs):.1f} ms | {p(xs, 0.9):.1f} ms | {min(xs):.1f} ms | {max(xs):.1f} ms |")
etcd_median = statistics.median(times["etcdctl lock X -- true"])
for name, _ in cmds:
    if not name.startswith("etcdctl"):
        print(f"\n{name}: {statistics.median(times[name]) / etcd_median:.2f}x etcdctl (medians)", end="")
print()
EOF

echo
echo "## Requests per CLI command (counted by a proxy in front of LocalStack)"
echo
proxy_port=$(free_port)
requests="$tmp/requests.log"
: >"$requests"
python3 "$here/count_requests.py" "$proxy_port" "$ENDPOINT" "$requests" &
proxy_pid=$!
for _ in $(seq 1 50); do
  curl -s -o /dev/null -m 1 "http://127.0.0.1:$proxy_port/" && break
  sleep 0.1
done
export AWS_ENDPOINT_URL=http://127.0.0.1:$proxy_port
counted="s3://$CAIRN_TEST_BUCKET/compare-etcd/$stamp-count"
count() {
  local what=$1
  shift
  local before after
  before=$(wc -l <"$requests")
  "$CAIRN" --store "$counted" "$@" >/dev/null 2>&1 || fail "cairn $* failed"
  after=$(wc -l <"$requests")
  printf '| %s | `cairn %s` | %d | %s |\n' "$what" "$*" $((after - before)) \
    "$(tail -n $((after - before)) "$requests" | awk '{print $1, $3}' | sort | uniq -c | awk '{printf "%s%s %s ×%s", sep, $2, $3, $1; sep=", "}')"
}
echo "| case | command | requests | method × status |"
echo "| --- | --- | ---: | --- |"
count "first call on a fresh prefix (probe, protocol record)" lock run first -- true
count "lock run, new lock" lock run L -- true
count "lock run, existing lock" lock run L -- true
count "turn run, due (new turn)" turn run T --every 300s -- true
count "turn run, not due" turn run T -- true
count "stream create, new stream" stream create S
count "stream create, existing stream" stream create S
