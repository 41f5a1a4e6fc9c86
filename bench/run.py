"""Run the benchmarks and print a markdown table: ``python -m bench.run [--quick] [CASE ...]``.

Run it from the repository root, with the virtualenv's Python.

Each case is measured in this one process, its variants interleaved, on a fresh database that is
deleted afterwards: a SQLite file in a temporary directory, or with ``--database postgres`` a new
database on the PostgreSQL server the libpq variables name (``PGHOST``, ``PGUSER``...), made
and dropped by the run. Keys are generated for the run. With ``--check`` the exit status is 1
when a target is missed. ``scripts/bench.sh`` runs everything, starting its own PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench import harness
from bench.cases import CASES, Options

QUICK = Options(
    repeats=3,
    iterations=2_000,
    rows=1_000,
    rotation_rows=50_000,
    rotation_repeats=2,
    loop_rows_postgres=5_000,
    loop_rows_sqlite=2_000,
    memory_repeats=1,
    fanout_rows=50_000,
    fanout_repeats=1,
    fanout_chunk_rows=12_500,
    search_rows=20_000,
    lookups=1_000,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "cases",
        nargs="*",
        metavar="CASE",
        help=f"cases to run, from: {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="where the tables live (default: sqlite)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: repeats={QUICK.repeats}, iterations={QUICK.iterations:,}, "
        f"rows={QUICK.rows:,}, rotation rows={QUICK.rotation_rows:,}",
    )
    parser.add_argument("--repeats", type=int, help=f"samples per variant ({defaults.repeats})")
    parser.add_argument(
        "--iterations",
        type=int,
        help=f"values per sample, per-value cases ({defaults.iterations:,})",
    )
    parser.add_argument("--rows", type=int, help=f"rows per table, load cases ({defaults.rows:,})")
    parser.add_argument(
        "--rotation-rows",
        type=int,
        help=f"rows of the rotated table ({defaults.rotation_rows:,}; the memory case also "
        "uses a tenth of it)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        dest="rotation_batch",
        help=f"the rotation's batch size ({defaults.rotation_batch:,}; the floor uses the same)",
    )
    parser.add_argument(
        "--rotation-repeats",
        type=int,
        help=f"rounds of the rotation case ({defaults.rotation_repeats})",
    )
    parser.add_argument(
        "--loop-rows",
        type=int,
        help=f"rows for the naive save loop and bulk_update ({defaults.loop_rows_postgres:,} on "
        f"PostgreSQL, {defaults.loop_rows_sqlite:,} on SQLite)",
    )
    parser.add_argument(
        "--fanout-rows",
        type=int,
        help=f"rows rotated by the Celery workers, fan-out case ({defaults.fanout_rows:,})",
    )
    parser.add_argument(
        "--fanout-repeats",
        type=int,
        help=f"rounds of the fan-out case ({defaults.fanout_repeats})",
    )
    parser.add_argument(
        "--search-rows",
        type=int,
        help=f"rows of the searched table, search-fetch case ({defaults.search_rows:,}; "
        "also BENCH_SEARCH_ROWS)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after measuring, print a cProfile summary of one sample of each variant",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}; choose from {', '.join(CASES)}")
    return args


def options_from(args: argparse.Namespace) -> Options:
    options = QUICK if args.quick else Options()
    overrides = {
        name: getattr(args, name)
        for name in (
            "repeats",
            "iterations",
            "rows",
            "rotation_rows",
            "rotation_batch",
            "rotation_repeats",
            "fanout_rows",
            "fanout_repeats",
            "search_rows",
        )
        if getattr(args, name) is not None
    }
    if args.search_rows is None and os.environ.get("BENCH_SEARCH_ROWS"):
        overrides["search_rows"] = int(os.environ["BENCH_SEARCH_ROWS"])
    if args.loop_rows is not None:
        overrides.update(loop_rows_postgres=args.loop_rows, loop_rows_sqlite=args.loop_rows)
    return replace(options, **overrides)


@contextmanager
def database(kind: str, directory: Path) -> Iterator[None]:
    """Point the settings at a fresh database for this run, and delete it afterwards."""
    os.environ["BENCH_DATABASE"] = kind
    os.environ["BENCH_BACKUP_DIR"] = str(directory / "key-backups")
    os.environ["BENCH_KEY_DATABASES_DIR"] = str(directory)  # the kms case's key tables
    if kind == "sqlite":
        os.environ["BENCH_SQLITE_PATH"] = str(directory / "bench.sqlite3")
        yield
        return
    import psycopg

    name = f"data_encryption_bench_{os.getpid()}"
    with psycopg.connect(autocommit=True) as admin:  # the server and user of PGHOST, PGUSER...
        admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["BENCH_PG_NAME"] = name
    try:
        yield
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)


def environment() -> str:
    import cryptography
    import django

    return (
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"cryptography {cryptography.__version__}, {database_description()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()}"
    )


def database_description() -> str:
    from django.db import connection

    if connection.vendor != "postgresql":
        return f"SQLite {sqlite3.sqlite_version} (temp file)"
    names = (
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "shared_buffers",
        "max_wal_size",
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0].split()[0]
        settings = []
        for name in names:
            cursor.execute(f"SHOW {name}")
            settings.append(f"{name}={cursor.fetchone()[0]}")
    return f"PostgreSQL {version} (unix socket; {', '.join(settings)})"


def run_case(name: str, options: Options, profile: bool) -> list[harness.Row]:
    built = CASES[name](options)
    if not isinstance(built, harness.Comparison):
        return built  # measured by the case itself
    measurement = harness.measure(built, options.repeats)
    if profile:
        for variant in built.variants:
            print(f"## Profile: {built.name}: {variant.name}\n")
            print(harness.profile(variant))
    return harness.rows(measurement)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = options_from(args)
    table: list[harness.Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="data-encryption-bench-") as directory,
        database(args.database, Path(directory)),
    ):
        setup_django()
        for name in args.cases or CASES:
            try:
                table += run_case(name, options, args.profile)
            except Exception as exc:  # the other cases' results are still worth printing
                traceback.print_exc()
                table.append(
                    harness.Row(
                        case=f"case {name!r}",
                        median="—",
                        ratio="—",
                        target="—",
                        result=f"**ERROR** ({type(exc).__name__}; traceback above the table)",
                        passed=False,
                    )
                )
        described = environment()
    print(described)
    print(
        f"{options.repeats} repeats, {options.iterations:,} values per per-value sample, "
        f"{options.rows:,} rows per table; rotation: {options.rotation_repeats} rounds on "
        f"{options.rotation_rows:,} rows in batches of {options.rotation_batch:,}, the loops "
        f"sampled in {options.loop_repeats} of them, "
        f"{options.memory_repeats} processes per memory size; fan-out: "
        f"{options.fanout_repeats} rounds on {options.fanout_rows:,} rows; times are medians, "
        "ratios medians of per-round ratios.\n"
    )
    print(harness.markdown_table(table))
    missed = any(row.passed is False for row in table)
    errored = any(row.result.startswith("**ERROR**") for row in table)
    return 1 if errored or (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
