"""Run the benchmarks and print a markdown table: ``python -m bench.run [--quick]``.

Run it from the repository root, with the virtualenv's Python.

Each case is measured in this one process, its variants interleaved, on a fresh SQLite file in
a temporary directory that is deleted afterwards. Keys are generated for the run. With
``--check`` the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench import harness
from bench.cases import CASES, Options

QUICK = Options(repeats=3, iterations=2_000, rows=1_000)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "cases", nargs="*", metavar="CASE",
        help=f"cases to run, from: {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help=f"a smoke run: repeats={QUICK.repeats}, iterations={QUICK.iterations:,}, "
        f"rows={QUICK.rows:,}",
    )
    parser.add_argument("--repeats", type=int, help=f"samples per variant ({defaults.repeats})")
    parser.add_argument(
        "--iterations", type=int,
        help=f"values per sample, per-value cases ({defaults.iterations:,})",
    )
    parser.add_argument("--rows", type=int, help=f"rows per table, load cases ({defaults.rows:,})")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument(
        "--profile", action="store_true",
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
        for name in ("repeats", "iterations", "rows")
        if getattr(args, name) is not None
    }
    return replace(options, **overrides)


def setup_django(database: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_SQLITE_PATH"] = str(database)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)


def environment() -> str:
    import cryptography
    import django

    return (
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"cryptography {cryptography.__version__}, SQLite {sqlite3.sqlite_version} (temp file), "
        f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = options_from(args)
    with tempfile.TemporaryDirectory(prefix="data-encryption-bench-") as directory:
        setup_django(Path(directory) / "bench.sqlite3")
        table: list[harness.Row] = []
        for name in args.cases or CASES:
            comparison = CASES[name](options)
            measurement = harness.measure(comparison, options.repeats)
            table += harness.rows(measurement)
            if args.profile:
                for variant in comparison.variants:
                    print(f"## Profile: {comparison.name}: {variant.name}\n")
                    print(harness.profile(variant))
    print(environment())
    print(
        f"{options.repeats} repeats, {options.iterations:,} values per per-value sample, "
        f"{options.rows:,} rows per table; times are medians, ratios medians of per-repeat "
        "ratios.\n"
    )
    print(harness.markdown_table(table))
    missed = any(row.passed is False for row in table)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
