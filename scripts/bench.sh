#!/usr/bin/env bash
# The benchmarks, everything `make bench` runs: per value, loading rows and rotation on SQLite,
# then rotation and its memory on a PostgreSQL that this script starts (and stops) with the
# server's default durability settings: fsync, synchronous_commit and full_page_writes on.
# Prints the tables for docs/benchmarks.md; writes nothing to the repository.
#
#   scripts/bench.sh                 everything, about fifteen minutes
#   scripts/bench.sh --quick         small sizes, a few minutes
#   scripts/bench.sh --check         exit with status 1 if a target is missed
#   scripts/bench.sh fanout          only the named cases, on the databases they run on
# Options are passed to every `python -m bench.run` command (see --help there). The fan-out
# case also needs Redis: started here on loopback (installed from Debian when missing).
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

SQLITE_CASES=(value load rotation)
POSTGRES_CASES=(rotation memory fanout)
options=() cases=()
for arg in "$@"; do  # a case's name is a case; anything else is an option or its value
  case $arg in
    value|load|rotation|memory|fanout) cases+=("$arg") ;;
    *) options+=("$arg") ;;
  esac
done
if [[ ${#cases[@]} -gt 0 ]]; then  # keep the defaults' order and databases, for the named cases
  pick() { local c; for c in "$@"; do [[ " ${cases[*]} " == *" $c "* ]] && echo "$c"; done; true; }
  mapfile -t SQLITE_CASES < <(pick "${SQLITE_CASES[@]}")
  mapfile -t POSTGRES_CASES < <(pick "${POSTGRES_CASES[@]}")
fi

ensure_venv .venv 3.11 "Django>=5.2,<5.3" "psycopg[binary]>=3.1"
start_bench_postgres
trap 'stop_redis; stop_postgres' EXIT

status=0
if [[ ${#SQLITE_CASES[@]} -gt 0 ]]; then
  step "SQLite: ${SQLITE_CASES[*]}"
  .venv/bin/python -m bench.run "${options[@]}" "${SQLITE_CASES[@]}" || status=1
fi
if [[ ${#POSTGRES_CASES[@]} -gt 0 ]]; then
  if [[ " ${POSTGRES_CASES[*]} " == *" fanout "* ]]; then
    start_redis
    export BENCH_REDIS_URL=$DATA_ENCRYPTION_TEST_REDIS_URL
  fi
  step "PostgreSQL: ${POSTGRES_CASES[*]}"
  .venv/bin/python -m bench.run --database postgres "${options[@]}" "${POSTGRES_CASES[@]}" || status=1
fi
exit $status
