#!/usr/bin/env bash
# The benchmarks, everything `make bench` runs: per value, loading rows and rotation on SQLite,
# then rotation, its memory and the Celery fan-out on a PostgreSQL that this script starts (and
# stops) with the server's default durability: fsync, synchronous_commit, full_page_writes on.
# Prints the tables for docs/benchmarks.md; writes nothing to the repository.
#
#   scripts/bench.sh                 everything, about fifteen minutes
#   scripts/bench.sh --quick         small sizes, a few minutes
#   scripts/bench.sh --check         exit with status 1 if a target is missed
#   scripts/bench.sh fanout          only the named cases, on the databases they run on
# Options are passed to every `python -m bench.run` command (see --help there). The fan-out
# case also needs Redis: started here on loopback (installed from Debian when missing); the kms
# case moto's KMS server (scripts/lib.sh start_moto), on loopback with dummy credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SQLITE_CASES=(value load rotation search-save kms)
POSTGRES_CASES=(rotation memory fanout conversion conversion-memory search-fetch search-save
  index-rebuild)
options=() cases=()
for arg in "$@"; do  # a case's name is a case; anything else is an option or its value
  case $arg in
    value|load|rotation|memory|fanout|conversion|conversion-memory|search-fetch|search-save|\
    index-rebuild|kms)
      cases+=("$arg") ;;
    *) options+=("$arg") ;;
  esac
done
if [[ ${#cases[@]} -gt 0 ]]; then  # keep the defaults' order and databases, for the named cases
  pick() { local c; for c in "$@"; do [[ " ${cases[*]} " == *" $c "* ]] && echo "$c"; done; true; }
  mapfile -t SQLITE_CASES < <(pick "${SQLITE_CASES[@]}")
  mapfile -t POSTGRES_CASES < <(pick "${POSTGRES_CASES[@]}")
fi

trap 'stop_moto; stop_redis; stop_postgres' EXIT
ensure_dev_venv

status=0
if [[ ${#SQLITE_CASES[@]} -gt 0 ]]; then
  if [[ " ${SQLITE_CASES[*]} " == *" kms "* ]]; then
    start_moto
    export BENCH_KMS_URL=$DATA_ENCRYPTION_TEST_KMS_URL
  fi
  step "SQLite: ${SQLITE_CASES[*]}"
  .venv/bin/python -m bench.run "${options[@]}" "${SQLITE_CASES[@]}" || status=1
  stop_moto  # an idle server, but not one to leave beside the PostgreSQL cases
fi
if [[ ${#POSTGRES_CASES[@]} -gt 0 ]]; then
  start_postgres durable  # fsync, synchronous_commit, full_page_writes on
  if [[ " ${POSTGRES_CASES[*]} " == *" fanout "* ]]; then
    start_redis
    export BENCH_REDIS_URL=$DATA_ENCRYPTION_TEST_REDIS_URL
  fi
  step "PostgreSQL: ${POSTGRES_CASES[*]}"
  .venv/bin/python -m bench.run --database postgres "${options[@]}" "${POSTGRES_CASES[@]}" || status=1
fi
exit $status
