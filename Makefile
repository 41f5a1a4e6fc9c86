.PHONY: demo test test-quick test-one venv lint bench

demo:            ## the demo: an example project on SQLite; makes keys, encrypts, shows rows
	scripts/demo.sh

test:            ## lint + the whole suite on SQLite and PostgreSQL, Django 5.2 / 6 on Python 3.11-3.13
	scripts/test.sh

test-quick:      ## Django 5.2 only, SQLite and PostgreSQL
	scripts/test.sh --quick

venv:            ## .venv, the development environment (as scripts/test.sh makes it)
	bash -c 'source scripts/lib.sh && ensure_dev_venv'

# One test module, class or method on SQLite in .venv: no lint, no PostgreSQL or Redis (the tests
# that need Redis skip). make test-one T=data_encryption.tests.test_envelope
test-one: venv
	@test -n "$(T)" || { echo "usage: make test-one T=data_encryption.tests.test_envelope[.Class[.method]]"; exit 2; }
	DATA_ENCRYPTION_TEST_DB=sqlite .venv/bin/python -m django test $(T) \
	  --settings=data_encryption.tests.settings --noinput

lint: venv
	scripts/lint.sh

bench:           ## benchmarks; writes nothing, prints the table for docs/benchmarks.md
	scripts/bench.sh
