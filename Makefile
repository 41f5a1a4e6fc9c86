.PHONY: demo test test-quick lint bench

demo:            ## the demo: an example project on SQLite; makes keys, encrypts, shows rows
	scripts/demo.sh

test:            ## lint + the whole suite on SQLite and PostgreSQL, Django 4.2 / 5.2 / 6
	scripts/test.sh

test-quick:      ## Django 5.2 only, SQLite and PostgreSQL
	scripts/test.sh --quick

lint:
	.venv/bin/ruff check data_encryption bench example && .venv/bin/mypy data_encryption bench

bench:           ## benchmarks; writes nothing, prints the table for docs/benchmarks.md
	scripts/bench.sh
