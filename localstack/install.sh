#!/usr/bin/env bash
# Installs LocalStack (host mode, S3 only) and moto into venvs under $CAIRN_TEST_HOME, Ceph
# (for RGW) from Debian's packages with apt-get, and Azurite from npm under $CAIRN_TEST_HOME.
# Idempotent: a stamp file records what was installed, so a second run costs nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
mkdir -p "$CAIRN_TEST_HOME"

install_venv() { # dir stamp-text requirements...
  local dir=$1 stamp=$2; shift 2
  if [ -f "$dir/.cairn-stamp" ] && [ "$(cat "$dir/.cairn-stamp")" = "$stamp" ]; then
    return 0
  fi
  local py; py=$(find_python)
  log "installing into $dir with $py"
  rm -rf "$dir"
  "$py" -m venv "$dir"
  "$dir/bin/pip" install --disable-pip-version-check -q "$@"
  echo "$stamp" > "$dir/.cairn-stamp"
}

install_venv "$LS_VENV" "${LS_REQUIREMENTS[*]}" "${LS_REQUIREMENTS[@]}"
install_venv "$MOTO_VENV" "${MOTO_REQUIREMENTS[*]}" "${MOTO_REQUIREMENTS[@]}"
"$here/ceph.sh" install
"$here/azurite.sh" install
log "installed"
