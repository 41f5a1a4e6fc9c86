#!/usr/bin/env bash
# Lint, as `make lint` and `make test` run it: ruff (rules and format), mypy, and the import map
# (no import circle, no arrow running back up a floor; see docs/architecture.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PATHS=(data_encryption bench example scripts)
.venv/bin/ruff check "${PATHS[@]}"
.venv/bin/ruff format --check "${PATHS[@]}" >/dev/null || {
  echo "ruff format would change files: run '.venv/bin/ruff format ${PATHS[*]}'"
  exit 1
}
.venv/bin/mypy data_encryption bench
.venv/bin/python scripts/import_map.py >/dev/null || {
  .venv/bin/python scripts/import_map.py | sed -n '/^circles:/,$p'
  echo "the import map has a circle or an upward arrow: see docs/architecture.md"
  exit 1
}
echo "lint: ruff, mypy and the import map are clean"
