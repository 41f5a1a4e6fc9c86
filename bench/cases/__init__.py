"""The benchmark cases, by name. Each builder prepares its data and returns a ``Comparison``
(measured by ``harness.measure``), or rows it measured itself (the memory case).

A new case is a module here with a ``build(options)`` function, registered in ``CASES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from bench.harness import Comparison, Row


@dataclass(frozen=True)
class Options:
    """Sizes shared by every case; ``--quick`` shrinks them for a smoke run."""

    repeats: int = 7
    iterations: int = 20_000  # per-value cases: operations per sample
    rows: int = 10_000  # table cases: rows per table
    rotation_rows: int = 1_000_000  # rotation cases: rows in the rotated table
    rotation_batch: int = 5_000  # rotation cases: the rotation's batch size (the app's default)
    rotation_repeats: int = 3  # rotation case: rounds (each rewrites rotation_rows rows twice)
    # The naive save loop and iterator() + bulk_update(): rows, and rounds they are sampled in
    # (one sample of the naive loop on PostgreSQL takes over a minute).
    loop_rows_postgres: int = 100_000
    loop_rows_sqlite: int = 10_000
    loop_repeats: int = 1
    memory_repeats: int = 1  # memory case: fresh processes per table size
    fanout_rows: int = 400_000  # fan-out case: rows rotated by one, then two Celery workers
    fanout_repeats: int = 3  # fan-out case: rounds (each runs both variants once)
    fanout_chunk_rows: int = 100_000  # fan-out case: CHUNK_ROWS (the app's default)
    search_rows: int = 1_000_000  # search-fetch case: rows of the searched table
    lookups: int = 2_000  # search-fetch case: rows fetched per sample, by each variant


BuildResult = Comparison | list[Row]


def _lazy(module: str) -> Callable[[Options], BuildResult]:
    # The case modules need Django set up, and a case's data is made only if the case runs.
    def build(options: Options) -> BuildResult:
        case: Callable[[Options], BuildResult] = import_module(f"{__name__}.{module}").build
        return case(options)

    return build


CASES: dict[str, Callable[[Options], BuildResult]] = {
    "value": _lazy("per_value"),
    "load": _lazy("row_load"),
    "rotation": _lazy("rotation"),
    "memory": _lazy("rotation_memory"),
    "fanout": _lazy("fanout"),
    "conversion": _lazy("conversion"),
    "conversion-memory": _lazy("conversion_memory"),
    "search-fetch": _lazy("search_fetch"),
    "search-save": _lazy("search_save"),
    "index-rebuild": _lazy("index_rebuild"),
    "kms": _lazy("kms"),
}
