#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts LocalStack, moto and Ceph RGW
# (no Docker), runs every test against them and the in-memory and filesystem backends, then
# stops the servers it started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

"$here/start.sh"
trap '"$here/stop.sh"' EXIT

# Static test credentials for the local servers; never reach for instance metadata.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export CAIRN_LOCALSTACK_ENDPOINT=${CAIRN_LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}
export CAIRN_MOTO_ENDPOINT=${CAIRN_MOTO_ENDPOINT:-http://127.0.0.1:5000}
export CAIRN_RGW_ENDPOINT=${CAIRN_RGW_ENDPOINT:-http://127.0.0.1:7480}

cargo build --locked --all-targets
cargo test --locked "$@"
