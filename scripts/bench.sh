#!/usr/bin/env bash
# The benchmarks, everything `make bench` runs: per value, loading rows and rotation on SQLite,
# then rotation and its memory on a PostgreSQL that this script starts (and stops) with the
# server's default durability settings: fsync, synchronous_commit and full_page_writes on.
# Prints the tables for docs/benchmarks.md; writes nothing to the repository.
#
#   scripts/bench.sh               everything, about ten minutes
#   scripts/bench.sh --quick       small sizes, about a minute
#   scripts/bench.sh --check       exit with status 1 if a target is missed
# Other options are passed to both `python -m bench.run` commands (see --help there).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# Like start_postgres in lib.sh, without its fsync=off and full_page_writes=off (right for the
# tests, wrong for a benchmark): only the socket directory and "no TCP" are set here.
start_bench_postgres() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -z $bin ]]; then
    step "installing PostgreSQL (Debian package)"
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  PG_DIR=$(mktemp -d /tmp/data-encryption-bench-pg.XXXXXX)
  local run=()
  if [[ $(id -u) == 0 ]]; then  # postgres refuses to run as root
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  step "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') (default durability) on a unix socket in $PG_DIR"
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-k $PG_DIR -c listen_addresses=''" start >/dev/null
  export PGHOST=$PG_DIR PGUSER=postgres PGDATABASE=postgres
  PG_BIN=$bin; PG_RUN=("${run[@]}")
}

ensure_venv .venv 3.11 "Django>=5.2,<5.3" "psycopg[binary]>=3.1"
start_bench_postgres
trap stop_postgres EXIT

status=0
step "SQLite: per value, loading rows, rotation"
.venv/bin/python -m bench.run "$@" value load rotation || status=1
step "PostgreSQL: rotation, rotation memory"
.venv/bin/python -m bench.run --database postgres "$@" rotation memory || status=1
exit $status
