#!/usr/bin/env bash
# The demo, from a fresh machine: makes a virtualenv, a fresh SQLite database and (once) demo
# keys, then runs example/clinic/management/commands/demo.py. No services needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_dev_venv
rm -f example/db.sqlite3
.venv/bin/python example/manage.py migrate --verbosity 0
.venv/bin/python example/manage.py check
.venv/bin/python example/manage.py demo
