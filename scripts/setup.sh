# Shared by scripts/test.sh and scripts/demo.sh (sourced, from the repository's root): puts
# in place only what they start, without touching the system Python or starting services.
#   - Rust: the toolchain rust-toolchain.toml pins (with rustfmt and clippy), through rustup;
#     rustup itself is installed into ~/.cargo when missing and its server is reachable.
#   - MariaDB: mariadb-server-core + mariadb-client-core (mariadbd, mariadb-install-db,
#     my_print_defaults, the mariadb client). Not mariadb-server, which starts and enables a
#     system server on :3306; the tests and the demo start private ones on free ports.
#   - osmem-server (the Elasticsearch-compatible test server): into a venv these scripts own,
#     target/test-venv; OSMEM_SERVER_BIN is exported.
# apt-get runs as root, or through sudo for other users.

say() { echo "== $*"; }
die() { echo "scripts/test.sh: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo"
fi
APT_UPDATED=""
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $*; install it with your package manager and run again"
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    die "missing $*; run as root, install sudo, or install: apt-get install $*"
  fi
  if [ -z "$APT_UPDATED" ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# ---- Rust -------------------------------------------------------------------------------
PINNED=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
MIN=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
export PATH="$HOME/.cargo/bin:$PATH"
version_ok() { # $1 >= $2, as dotted versions
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}
cargo_version() { cargo --version 2>/dev/null | awk '{print $2}'; }
if ! command -v rustup >/dev/null 2>&1 && ! { command -v cargo >/dev/null 2>&1 && version_ok "$(cargo_version)" "$MIN"; }; then
  say "installing rustup (cargo missing or older than $MIN)"
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  # static.rust-lang.org serves both rustup-init.sh (what sh.rustup.rs redirects to) and
  # the toolchains rustup then fetches.
  INIT=$(mktemp)
  if curl -fsS --max-time 60 --proto '=https' --tlsv1.2 -o "$INIT" https://static.rust-lang.org/rustup/rustup-init.sh; then
    sh "$INIT" -y -q --profile minimal --default-toolchain none --no-modify-path
    rm -f "$INIT"
  else
    rm -f "$INIT"
    die "Rust >= $MIN is needed and https://static.rust-lang.org is unreachable; install Rust $PINNED (with rustfmt, clippy) from https://rustup.rs and run again"
  fi
fi
# Under rustup, the first cargo call installs the pinned toolchain and its components.
HAVE=$(cargo_version) || true
[ -n "$HAVE" ] || die "cargo does not run; install Rust $PINNED from https://rustup.rs"
version_ok "$HAVE" "$MIN" || die "cargo $HAVE is older than $MIN (rust-version); install Rust $PINNED from https://rustup.rs"
say "cargo $HAVE (pinned: $PINNED)"

# ---- MariaDB ----------------------------------------------------------------------------
# mariadbd lives in /usr/sbin, which may not be on a normal user's PATH.
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ] \
  || ! command -v mariadb-install-db >/dev/null 2>&1 \
  || ! command -v my_print_defaults >/dev/null 2>&1; then
  say "installing mariadb-server-core mariadb-client-core (no system server is started)"
  apt_install mariadb-server-core mariadb-client-core
fi

# ---- osmem-server -----------------------------------------------------------------------
if [ -z "${OSMEM_SERVER_BIN:-}" ]; then
  VENV=target/test-venv
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import osmem_server' >/dev/null 2>&1; then
    say "installing osmem-server into $VENV"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
      apt_install python3 python3-venv
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check osmem-server
  fi
  OSMEM_SERVER_BIN=$("$VENV/bin/python" -c 'import osmem_server as o; print(o.resolve_binary())')
  export OSMEM_SERVER_BIN
fi

