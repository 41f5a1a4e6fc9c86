#!/usr/bin/env bash
# The whole test suite, from a fresh machine: lint, then every test on SQLite and on a real
# PostgreSQL that this script starts (and stops), across the supported Django versions.
#
#   scripts/test.sh              everything (what `make test` and CI run)
#   scripts/test.sh --quick      Python 3.11 + Django 5.2 only, SQLite and PostgreSQL
#   TESTS=data_encryption.tests.test_keys scripts/test.sh --quick   a subset
#   LINT=0 scripts/test.sh ...   skip the lint (ruff, mypy, the import map)
# One module on SQLite alone, no services and no lint: `make test-one T=<dotted path>`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
TESTS=${TESTS:-data_encryption}
# The tests that need a service this script starts fail, instead of skipping, when it is missing:
# CI never passes by skipping.
export DATA_ENCRYPTION_TEST_REQUIRE_SERVICES=1

# name | python | Django requirement | PostgreSQL driver. Django 6 needs Python >= 3.12.
MATRIX=("django52|3.11|Django>=5.2,<5.3|psycopg[binary]>=3.1")
if [[ $QUICK == 0 ]]; then
  MATRIX+=("django6-py312|3.12|Django>=6.0,<7|psycopg[binary]>=3.1")
  MATRIX+=("django6-py313|3.13|Django>=6.0,<7|psycopg[binary]>=3.1")
fi

LOG_DIR=$(mktemp -d)
trap 'stop_postgres; stop_redis; stop_moto; stop_softhsm; rm -rf "$LOG_DIR"' EXIT
start_postgres
start_redis
start_softhsm

ensure_dev_venv
start_moto  # its server runs from .venv
if [[ ${LINT:-1} == 1 ]]; then
  step "lint (ruff, mypy, import map)"
  scripts/lint.sh
fi

status=0
for entry in "${MATRIX[@]}"; do
  IFS='|' read -r name python django driver <<<"$entry"
  venv=.venv-$name
  [[ $name == django52 ]] && venv=.venv
  ensure_venv "$venv" "$python" "$django" "$driver"
  version=$("$venv/bin/python" -c 'import django; print(django.get_version())')
  for db in sqlite postgres; do
    # The fuzz tests' full 10,000 examples per entry point run in one configuration only.
    fuzz=${DATA_ENCRYPTION_FUZZ_EXAMPLES:-300}
    [[ $QUICK == 0 && $name == django52 && $db == sqlite ]] && fuzz=10000
    step "tests: Python $python, Django $version, $db (fuzz: $fuzz examples)"
    log="$LOG_DIR/$name-$db.log"
    if DATA_ENCRYPTION_FUZZ_EXAMPLES=$fuzz DATA_ENCRYPTION_TEST_DB=$db "$venv/bin/python" -m django test $TESTS \
        --settings=data_encryption.tests.settings --noinput -v 1 2>&1 | tee "$log"; then :; else
      status=1
    fi
  done
done

passed=0; failed=0
for log in "$LOG_DIR"/*.log; do
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
  if [[ -z $line ]]; then failed=$((failed + 1)); echo "no summary in $(basename "$log")"; continue; fi
  passed=$((passed + $(awk '{print $1}' <<<"$line")))
  failed=$((failed + $(awk '{print $3}' <<<"$line" | tr -d ,)))
done
[[ $failed == 0 ]] || status=1
echo
echo "$passed passed, $failed failed"
exit $status
