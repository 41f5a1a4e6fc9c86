"""Benchmarks for django-data-encryption: ``python -m bench.run`` (see docs/benchmarks.md)."""
