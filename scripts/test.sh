#!/usr/bin/env bash
# The project's one test command, for a developer machine or CI (Debian-like, as root or with
# sudo): installs the servers the integration tests start (MariaDB, osmem-server) when they
# are missing, then runs the formatter check, clippy and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# mariadbd usually lives in /usr/sbin, which may not be on a normal user's PATH.
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  echo "== installing mariadb-server"
  apt_install mariadb-server
fi

if [ -z "${OSMEM_SERVER_BIN:-}" ] && ! python3 -c 'import osmem_server' >/dev/null 2>&1 \
  && ! command -v osmem-server >/dev/null 2>&1; then
  echo "== installing osmem-server"
  if ! python3 -m pip --version >/dev/null 2>&1; then apt_install python3 python3-pip; fi
  python3 -m pip install -q osmem-server \
    || python3 -m pip install -q --break-system-packages osmem-server
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
RUST_BACKTRACE=1 cargo test --all-targets
