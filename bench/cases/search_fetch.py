"""Fetching one row by an encrypted value: ``get(ssn=...)`` answered by the blind index, against
``get(plain_ssn=...)`` answered by a plain indexed column holding the same values in the same
rows (``SearchRecord``). Both fetch the whole row (so both decrypt its SSN); what differs is
the keyed hash of the looked-up value and the index it reads (16 bytes against 11 characters).
The same random rows are fetched by both, interleaved.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from django.db import connection, transaction

from bench.benchapp.models import SearchRecord
from bench.harness import Comparison, Target, Variant

from . import Options

PLAIN = "plain indexed column"
BLIND = "blind index"

INSERT_BATCH = 5_000


def ssn(index: int) -> str:
    """Row ``index``'s SSN: distinct for every index below 10**9 (7919 is prime to 10**9)."""
    digits = f"{index * 7919 % 10**9:09d}"
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def build(options: Options) -> Comparison:
    rows = options.search_rows
    _fill(rows)
    chosen = random.Random(11).sample(range(rows), min(options.lookups, rows))
    wanted = [(ssn(index), index + 1) for index in chosen]
    return Comparison(
        name=f"fetch 1 row of {rows:,} by an 11-character value",
        unit="fetch",
        operations=len(wanted),
        variants=[
            Variant(PLAIN, _fetch("plain_ssn", wanted)),
            Variant(BLIND, _fetch("ssn", wanted), Target(max_ratio=1.3)),
        ],
    )


def _fill(rows: int) -> None:
    """The table, made once per run: ids 1..rows in order, so row ``i`` has id ``i + 1``."""
    if SearchRecord._default_manager.count() == rows:
        return
    SearchRecord._default_manager.all().delete()
    table = connection.ops.quote_name(SearchRecord._meta.db_table)
    with connection.cursor() as cursor:  # ids from 1 again (PostgreSQL keeps its sequence)
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {table} RESTART IDENTITY")
    for start in range(0, rows, INSERT_BATCH):
        with transaction.atomic():
            SearchRecord._default_manager.bulk_create(
                SearchRecord(id=index + 1, ssn=ssn(index), plain_ssn=ssn(index))
                for index in range(start, min(start + INSERT_BATCH, rows))
            )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def _fetch(column: str, wanted: list[tuple[str, int]]) -> Callable[[], object]:
    get = SearchRecord._default_manager.get

    def run() -> int:
        found = 0
        for value, pk in wanted:
            row = get(**{column: value})
            found += row.pk == pk
        return found

    assert run() == len(wanted), column  # every lookup finds its own row
    return run
