#!/usr/bin/env bash
# The project's one test command, for a developer machine or CI (Debian-like): sets up only
# what the tests start (scripts/setup.sh: the pinned Rust, MariaDB's server binaries without a
# system server, osmem-server in a venv), then runs the formatter check, clippy and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

# ---- the checks -------------------------------------------------------------------------
if [ ! -d ../shared/binlog-samples ]; then
  say "../shared/binlog-samples is absent: the sample tests skip (binlog_samples, fuzz_decode)"
fi
say "cargo fmt --check"
cargo fmt --check
say "cargo clippy"
# Warnings fail the run on the pinned toolchain only: a newer one's new lints are the
# maintainers' next chore, not a user's failed test run.
if [ "$HAVE" = "$PINNED" ]; then
  cargo clippy --all-targets -- -D warnings
else
  say "cargo $HAVE is not the pinned $PINNED: clippy warnings are reported, not fatal"
  cargo clippy --all-targets
fi
say "cargo test"
RUST_BACKTRACE=1 cargo test --all-targets
