"""Rebuilding a blind index: ``rebuild_blind_index`` over ``rotation_rows`` rows (a million by
default) whose index is missing, against the same walk with no cryptography.

The table holds one ``EncryptedCharField(blind_index=True)`` value per row (an 11-character
plaintext sealed and bound to its column) with its index columns NULL, as after adding
``blind_index=True`` to a populated field. Before each sample the index column is emptied again.

- *floor*, the baseline, measured as the conversion case measures its own: the walk's database
  work with the decryption and hashing taken out. ``read_rows`` and ``write_rows`` walk a table
  holding the same bytes and two plain index columns by keyset in the same batches, each batch
  one transaction with the compare-and-swap statement (set the index column where the
  ciphertext is the one read), each index value 16 bytes made without any cryptography.
- *rebuild_blind_index*: ``KeyRotationService(batch_size=...).rebuild_blind_index([the field])``;
  the sample is the walk only (the ``Progress`` hooks); the whole call is reported beside it.
  The issue's target: at most twice the floor's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection, models, transaction

from bench.benchapp.models import IndexFloorRecord, IndexRecord
from bench.harness import Comparison, Target, Timed, Variant
from data_encryption.rotation import Batch, Table, read_rows, write_rows
from data_encryption.services import KeyRotationService

from . import Options
from .rotation import _analyze, _Stopwatch, plaintext

FLOOR = "floor: the walk's reads and CAS index writes, no decryption or hashing"
REBUILD = "rebuild_blind_index(): index walk"
WHOLE = "whole rebuild_blind_index() call"
LABEL = "benchapp.IndexRecord.value"


def build(options: Options) -> Comparison:
    rows, batch = options.rotation_rows, options.rotation_batch
    postgres = connection.vendor == "postgresql"
    fill(rows)
    return Comparison(
        name=(
            f"rebuild_blind_index {rows:,} rows, batches of {batch:,}, "
            f"{'PostgreSQL' if postgres else 'SQLite'}"
        ),
        operations=rows,
        unit="row",
        rate=True,
        repeats=options.rotation_repeats,
        variants=[
            Variant(FLOOR, _floor(rows, batch), setup=_emptied(IndexFloorRecord)),
            Variant(
                REBUILD,
                _rebuild(rows, batch),
                Target(max_ratio=2.0) if postgres else None,
                setup=_emptied(IndexRecord),
            ),
        ],
    )


def fill(rows: int) -> None:
    """``rows`` sealed values in ``IndexRecord`` (unless there already), the same bytes in the
    floor's table."""
    if IndexRecord._default_manager.count() != rows:
        IndexRecord._default_manager.all().delete()
        field = IndexRecord._meta.get_field("value")
        values = [field.get_db_prep_value(plaintext(i), connection) for i in range(rows)]
        table = connection.ops.quote_name(IndexRecord._meta.db_table)
        with transaction.atomic(), connection.cursor() as cursor:
            raw_cursor = cursor.cursor
            if connection.vendor == "postgresql" and hasattr(raw_cursor, "copy"):  # psycopg 3
                with raw_cursor.copy(f"COPY {table} (value) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["bytea"])
                    for value in values:
                        copy.write_row((value,))
            else:
                cursor.executemany(
                    f"INSERT INTO {table} (value) VALUES (%s)", [(v,) for v in values]
                )
    IndexFloorRecord._default_manager.all().delete()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(IndexFloorRecord._meta.db_table)} (id, value) "
            f"SELECT id, value FROM {quote(IndexRecord._meta.db_table)}"
        )


def _emptied(model: type[models.Model]) -> Callable[[], None]:
    """Before each sample: no index values, the table vacuumed and checkpointed."""

    def setup() -> None:
        model._default_manager.update(value_bidx_a=None, value_bidx_b=None)
        _analyze(model)

    return setup


def _floor(rows: int, batch_size: int) -> Callable[[], object]:
    columns = [("value", "value"), ("a", "value_bidx_a"), ("b", "value_bidx_b")]
    table = Table("floor", IndexFloorRecord._meta.db_table, "id", columns)

    def run() -> int:
        after, walked = None, 0
        while records := read_rows(connection, table, after, batch_size):
            batch = Batch(rows=len(records), last_pk=records[-1][0])
            batch.updates[("value_bidx_a", "value")] = [  # type: ignore[index]
                (bytes(raw)[-16:], pk, raw) for pk, raw, index, _b in records if index is None
            ]
            with transaction.atomic():
                write_rows(connection, table, batch)
            after, walked = batch.last_pk, walked + batch.rows
        assert walked == rows, "floor"
        assert not IndexFloorRecord._default_manager.filter(value_bidx_a=None).exists()
        return walked

    return run


def _rebuild(rows: int, batch_size: int) -> Callable[[], object]:
    def run() -> Timed:
        stopwatch = _Stopwatch()
        start = time.perf_counter()
        service = KeyRotationService(batch_size=batch_size, progress=stopwatch)
        report = service.rebuild_blind_index([LABEL])
        end = time.perf_counter()
        assert not isinstance(report, dict) and report.status == "completed", report
        assert report.records_reencrypted == rows, report.as_dict()
        assert IndexRecord._default_manager.get(value=plaintext(7)).pk is not None
        marks = stopwatch.marks
        return Timed(marks["walked"] - marks["walk"], {WHOLE: end - start})

    return run
