# Shared settings for the test-server scripts. Sourced, not run.
# Everything lives under CAIRN_TEST_HOME so a fresh machine needs nothing but Python >= 3.12
# (and, for Ceph RGW, Debian's packages, which ceph.sh installs with apt-get; for Azurite, Node.js
# with npm).
: "${CAIRN_TEST_HOME:=${XDG_CACHE_HOME:-$HOME/.cache}/cairn-test}"
: "${CAIRN_PYTHON:=}"
LOCALSTACK_PORT=${LOCALSTACK_PORT:-4566}
MOTO_PORT=${MOTO_PORT:-5000}
RGW_PORT=${RGW_PORT:-7480}
CEPH_MON_PORT=${CEPH_MON_PORT:-3300}
CAIRN_TEST_BUCKET=${CAIRN_TEST_BUCKET:-cairn-test}
LS_VENV="$CAIRN_TEST_HOME/localstack-venv"
MOTO_VENV="$CAIRN_TEST_HOME/moto-venv"
RUN_DIR="$CAIRN_TEST_HOME/run"
CEPH_DIR="$RUN_DIR/ceph"
# Pinned: localstack-core 2026.3.0 needs these upper bounds to import in host mode.
LS_REQUIREMENTS=("localstack-core[base-runtime]==2026.3.0" "cbor2<6" "pyopenssl<26" "cryptography<47" "service_identity")
MOTO_REQUIREMENTS=("moto[s3,server]==5.*" "flask" "flask-cors")

find_python() {
  if [ -n "$CAIRN_PYTHON" ]; then echo "$CAIRN_PYTHON"; return 0; fi
  local c
  for c in python3.13 python3.12 "$HOME/.pyenv/versions/3.13.0/bin/python" /root/.pyenv/versions/3.13.0/bin/python python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  for c in "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python; do
    [ -x "$c" ] && { echo "$c"; return 0; }
  done
  echo "no Python >= 3.12 found: set CAIRN_PYTHON" >&2
  return 1
}

log() { printf '[localstack/%s] %s\n' "$(basename "$0")" "$*" >&2; }
AZURITE_PORT=${AZURITE_PORT:-10000}
AZURITE_DIR="$CAIRN_TEST_HOME/azurite"
# Pinned: the last release that runs on Node.js 20 (3.36 needs 21, 3.37 needs 22).
AZURITE_VERSION=3.35.0
