#!/usr/bin/env bash
# See binlog2es work with nothing but this repository (no Docker): starts a private MariaDB
# (row binlog on) and osmem-server (an Elasticsearch-compatible test server), both on free
# ports in a temp dir, loads a small blog database, runs binlog2es with an initial copy,
# makes a few changes and prints the documents. Ctrl-C (or the end, when not on a terminal)
# stops everything it started and removes the temp dir.
#   scripts/demo.sh            # on a terminal: stays up until Ctrl-C, to look around
#   scripts/demo.sh --exit     # print the documents, then stop
# Set-up is scripts/test.sh's (scripts/setup.sh): the pinned Rust, MariaDB's server binaries
# without a system server, osmem-server in target/test-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

STAY=""
if [ -t 0 ] && [ "${1:-}" != "--exit" ]; then STAY=1; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/binlog2es-demo.XXXXXX")
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  # Ctrl-C also ends a pager or `| tee` reading our output: keep going without it.
  trap '' PIPE
  set +e
  echo || true
  say "stopping binlog2es, MariaDB and osmem-server; removing $WORK"
  # binlog2es first (it drains and writes its checkpoint), then the servers.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  say "stopped" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
ROOT_ARGS=()
if [ "$(id -u)" -eq 0 ]; then ROOT_ARGS=(--user=root); fi

say "building binlog2es (debug build; cargo build --release for the real thing)"
cargo build -q --bin binlog2es
BIN="${CARGO_TARGET_DIR:-target}/debug/binlog2es"

# ---- MariaDB ---------------------------------------------------------------------------
say "starting a private MariaDB (binlog on) in $WORK/mariadb"
mkdir -p "$WORK/mariadb/tmp"
TMPDIR="$WORK/mariadb/tmp" mariadb-install-db --no-defaults --datadir="$WORK/mariadb/data" \
  --auth-root-authentication-method=socket --skip-test-db "${ROOT_ARGS[@]}" >"$WORK/mariadb/install.log" 2>&1 \
  || { cat "$WORK/mariadb/install.log"; exit 1; }
MY_PORT=$(free_port)
SOCK="$WORK/mariadb/sock"
"$MARIADBD" --no-defaults --datadir="$WORK/mariadb/data" --socket="$SOCK" \
  --tmpdir="$WORK/mariadb/tmp" --port="$MY_PORT" --bind-address=127.0.0.1 \
  --log-bin="$WORK/mariadb/data/binlog" --binlog-format=ROW --binlog-row-image=FULL \
  --binlog-row-metadata=FULL --server-id=1 --skip-name-resolve \
  --log-error="$WORK/mariadb/err.log" --pid-file="$WORK/mariadb/pid" \
  --innodb-buffer-pool-size=64M "${ROOT_ARGS[@]}" &
PIDS=("$!" "${PIDS[@]}")
sql() { mariadb --no-defaults --socket="$SOCK" -uroot "$@"; }
for _ in $(seq 1 60); do sql -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
sql -e 'SELECT 1' >/dev/null || { cat "$WORK/mariadb/err.log"; exit 1; }

say "loading the blog database"
sql <<'SQL'
CREATE DATABASE blog CHARACTER SET utf8mb4;
USE blog;
CREATE TABLE authors (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200));
CREATE TABLE posts (
  id INT PRIMARY KEY AUTO_INCREMENT,
  author_id INT NOT NULL,
  title VARCHAR(200) NOT NULL,
  body TEXT,
  tags SET('rust', 'mysql', 'search', 'ops'),
  published_at DATETIME(3),
  likes INT UNSIGNED NOT NULL DEFAULT 0
);
CREATE TABLE comments (id INT PRIMARY KEY AUTO_INCREMENT, post_id INT NOT NULL, body TEXT NOT NULL);
INSERT INTO authors VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', NULL);
INSERT INTO posts (author_id, title, body, tags, published_at, likes) VALUES
  (1, 'Tailing the binlog', 'Row events carry every column.', 'rust,mysql', '2026-01-05 10:00:00.250', 12),
  (2, 'Search that keeps up', 'Bulk requests, external versions.', 'search', '2026-02-11 08:30:00', 3),
  (1, 'Draft', NULL, '', NULL, 0);
INSERT INTO comments (post_id, body) VALUES (1, 'Nice!'), (1, 'What about DDL?'), (2, 'Fast.');
CREATE USER binlog2es@'127.0.0.1' IDENTIFIED BY 'demo';
GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO binlog2es@'127.0.0.1';
SQL

# ---- osmem-server ----------------------------------------------------------------------
say "starting osmem-server (Elasticsearch-compatible, in memory)"
"$OSMEM_SERVER_BIN" -addr 127.0.0.1:0 -no-stdin-watch -parent-pid $$ >"$WORK/osmem.out" 2>"$WORK/osmem.err" &
PIDS=("$!" "${PIDS[@]}")
ES_URL=""
for _ in $(seq 1 60); do
  ES_URL=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["url"])' "$WORK/osmem.out" 2>/dev/null) && break
  sleep 0.25
done
[ -n "$ES_URL" ] || { cat "$WORK/osmem.err"; exit 1; }

# ---- binlog2es -------------------------------------------------------------------------
HTTP_PORT=$(free_port)
CONFIG="$WORK/binlog2es.toml"
cat >"$CONFIG" <<EOF
[mysql]
url = "mysql://binlog2es:demo@127.0.0.1:$MY_PORT"
server_id = 4242
[elasticsearch]
url = "$ES_URL"
[checkpoint]
path = "$WORK/checkpoint.json"
[snapshot]
mode = "initial"          # copy the rows already there, streaming meanwhile
[http]
listen = "127.0.0.1:$HTTP_PORT"
[[tables]]
match = "blog.*"          # index "blog.posts" etc.
EOF
say "binlog2es check"
"$BIN" check --config "$CONFIG"
say "starting binlog2es run (log: $WORK/binlog2es.log)"
"$BIN" run --config "$CONFIG" >"$WORK/binlog2es.log" 2>&1 &
PIDS=("$!" "${PIDS[@]}")
es() { python3 - "$ES_URL" "$@" <<'PY'
import json, sys, urllib.request
base, path = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(base + path, timeout=5) as r:
        print(json.dumps(json.load(r)))
except Exception:
    print("{}")
PY
}
count() { es "/$1/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", -1))'; }
wait_count() { # index, expected
  for _ in $(seq 1 120); do
    [ "$(count "$1")" = "$2" ] && return 0
    sleep 0.25
  done
  echo "timed out waiting for $2 documents in $1; log:"; tail -20 "$WORK/binlog2es.log"; exit 1
}
for _ in $(seq 1 120); do "$BIN" probe --config "$CONFIG" >/dev/null 2>&1 && break; sleep 0.5; done
"$BIN" probe --config "$CONFIG" || { tail -20 "$WORK/binlog2es.log"; exit 1; }
wait_count blog.posts 3
wait_count blog.comments 3
wait_count blog.authors 2
say "initial copy done: 3 posts, 3 comments, 2 authors indexed"

say "changing MySQL: a new post, an edited title, a deleted comment"
sql blog <<'SQL'
INSERT INTO posts (author_id, title, body, tags, published_at) VALUES (2, 'Hello from the binlog', 'Written after the copy.', 'ops', NOW(3));
UPDATE posts SET title = 'Tailing the binlog, revised', likes = likes + 1 WHERE id = 1;
DELETE FROM comments WHERE id = 2;
SQL
wait_count blog.posts 4
wait_count blog.comments 2

show() {
  echo "-- index $1"
  es "/$1/_search?size=100" | python3 -c '
import json, sys
hits = json.load(sys.stdin).get("hits", {}).get("hits", [])
for h in sorted(hits, key=lambda h: int(h["_id"]) if h["_id"].isdigit() else 0):
    print(h["_id"], json.dumps(h["_source"], ensure_ascii=False, sort_keys=True))'
}
echo
show blog.authors
show blog.posts
show blog.comments
echo
say "status"
"$BIN" status --config "$CONFIG"
say "verify (every table against its index)"
"$BIN" verify --config "$CONFIG"
cat <<EOF

Where to look next:
  metrics     http://127.0.0.1:$HTTP_PORT/metrics   (binlog2es_changes_total, binlog2es_lag_seconds, ...)
  readiness   http://127.0.0.1:$HTTP_PORT/readyz    or: $BIN probe --config $CONFIG
  documents   $ES_URL/blog.posts/_search?pretty
  MySQL       mariadb --no-defaults --socket=$SOCK -uroot blog
  config      $CONFIG   (every key: config/binlog2es.toml, README "Configuration")
  log         $WORK/binlog2es.log
EOF
if [ -n "$STAY" ]; then
  say "running; change rows in MySQL (command above) and search again. Ctrl-C stops everything."
  wait "${PIDS[0]}"
fi
