#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts LocalStack, moto, Ceph RGW and
# Azurite (no Docker), runs every test against them and the in-memory and filesystem backends, then
# stops the servers it started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

# A run from a fresh clone gains nothing from incremental artifacts, which took 1.9 GB; the
# disk the build has left is printed first, so that a linker killed mid-write (SIGBUS when the
# disk fills) is explained in the log.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
df -h . | sed 's/^/[test.sh] /'

# The library an ingestor embeds (the root package; the binary and the drivers are the other
# packages of the workspace): without its default features (no AWS SDK, no test utilities) it
# builds, and depends on none of the CLI's or the AWS SDK's crates. libc comes in
# through object_store, rand and uuid anyway; only a direct dependency on it is refused.
cargo build --locked -p cairn-coord --no-default-features --lib
lib_tree=$(cargo tree --locked -p cairn-coord -e normal --no-default-features --prefix none)
if grep -E '^(clap|aws-config|aws-credential-types|tracing-subscriber|ratatui|indicatif) ' <<<"$lib_tree"; then
  echo "test.sh: cairn with default-features = false depends on the crates above" >&2
  exit 1
fi
if cargo tree --locked -p cairn-coord -e normal --no-default-features --depth 1 --prefix none | grep -E '^libc '; then
  echo "test.sh: cairn with default-features = false depends on libc directly" >&2
  exit 1
fi

# Its lints hold (src/lib.rs denies the system clock, sleeping, threads and unseeded
# randomness in the library, clippy.toml says why), where clippy is installed.
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --locked -p cairn-coord --lib --no-default-features -- -D warnings
fi

# No import cycle between the library's files (error.rs at the bottom, the manifest layer's
# protocol below both strategies): .ci/import_cycles.py names any.
# Every public async fn documents its cancel safety: .ci/cancel_safety.py names any that
# does not.
if command -v python3 >/dev/null 2>&1; then
  python3 .ci/import_cycles.py
  python3 .ci/cancel_safety.py
fi

# Its docs (and the drivers' and the binary's) build without a warning (missing docs are
# errors in the library), and its examples run, each on a
# memory store or a temporary directory, in a few seconds.
# The library alone is documented with its default features, as docs.rs shows it (in the
# workspace, the drivers' test-util would make its internals public).
RUSTDOCFLAGS="-D warnings" cargo doc --locked -p cairn-coord --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps
for example in stream_from_any_ingestor expiry_turns agent_status online_status cached_view fenced_lease; do
  cargo run --locked --quiet -p cairn-coord --example "$example" >/dev/null
done

"$here/start.sh"
trap '"$here/stop.sh"' EXIT

# Static test credentials for the local servers; never reach for instance metadata.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export CAIRN_LOCALSTACK_ENDPOINT=${CAIRN_LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}
export CAIRN_MOTO_ENDPOINT=${CAIRN_MOTO_ENDPOINT:-http://127.0.0.1:5000}
export CAIRN_RGW_ENDPOINT=${CAIRN_RGW_ENDPOINT:-http://127.0.0.1:${RGW_PORT:-7480}}
export CAIRN_AZURITE_ENDPOINT=${CAIRN_AZURITE_ENDPOINT:-http://127.0.0.1:10000}

cargo build --locked --all-targets
cargo test --locked "$@"

# The library without the CLI also builds against object_store 0.13 (Cargo.toml allows
# 0.13.2 up to 0.14), so an embedder on 0.13 can hand cairn its store: a copy of the tree with
# the lockfile moved to 0.13.2 runs the conformance suite and the fenced-data tests on memory,
# the filesystem and LocalStack. The copy is the root package alone: the binary needs 0.14.
if [ $# -eq 0 ]; then
  os13=$(mktemp -d)
  trap 'rm -rf "$os13"; "$here/stop.sh"' EXIT
  cp -r Cargo.toml Cargo.lock README.md src tests examples "$os13/"
  (
    cd "$os13"
    python3 - <<'PY'
import re
s = open("Cargo.toml").read()
# The root package alone: no [workspace] table, and the workspace's lints written in place.
s = re.sub(r"(?ms)^\[workspace\]\n.*?(?=^\[package\])", "", s)
s = s.replace("[lints]\nworkspace = true\n", "[lints.clippy]\ndisallowed_methods = \"allow\"\ndisallowed_types = \"allow\"\n")
open("Cargo.toml", "w").write(s)
PY
    grep -q '^\[workspace' Cargo.toml && { echo "test.sh: the os13 copy still has a workspace table" >&2; exit 1; }
    cargo update --quiet -p object_store --precise 0.13.2
    grep -A1 '^name = "object_store"' Cargo.lock | grep -q '"0.13.2"'
    flags=(--no-default-features --features aws,test-util --target-dir "$here/../target/os13")
    cargo test "${flags[@]}" --test conformance -- memory_ fs_ localstack_
    cargo test "${flags[@]}" --test fenced
  )
fi
