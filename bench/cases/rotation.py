"""Re-encrypting a column: a key rotation against its floor and the usual Django loops.

The table has ``rotation_rows`` rows (a million by default) of one ``EncryptedCharField``
holding an 11-byte value: a 47-byte envelope in a binary column. The values are sealed in Python
and loaded with ``COPY`` (PostgreSQL) or one ``executemany`` (SQLite) before anything is timed.

- *floor*, the baseline: the rotation's own database work with the encryption taken out.
  ``read_rows`` and ``write_rows`` from ``data_encryption.rotation`` walk a table holding the same
  bytes (a plain ``BinaryField``) by keyset in the rotation's batches, each batch written in one
  transaction with the rotation's compare-and-swap statement; each value gets one byte flipped,
  so every row really changes (SQLite skips a write of identical bytes).
- *rotation*: ``KeyRotationService(batch_size=...).rotate(models=[this table])``, in batches of
  ``rotation_batch`` rows (5,000 by default, the app's own default). The sample is the walk
  only, from the start of the first chunk to the end of the last (the ``Progress`` hooks), so
  rows per second is the re-encryption throughput. The census pass that follows and
  the whole ``rotate()`` call (key backup, activation, ``COUNT(*)``, walk, census) are reported
  beside it. ``KEY_CACHE_SECONDS`` is 0 during the call, so the rotation does not wait for other
  processes' key rings (there are none); see ``bench/settings.py`` for why only there.
- *naive loop*: ``for obj in Model.objects.all(): obj.save()`` on a table of the same shape with
  ``loop_rows`` rows; every save re-encrypts under the primary key and commits on its own.
- *iterator() + bulk_update()*: ``Model.objects.iterator(chunk_size=1000)`` and one
  ``bulk_update(chunk, ["value"])`` per 1,000 objects.

On PostgreSQL every sample starts from the same state: its table is vacuumed and a
``CHECKPOINT`` is taken, untimed, first (so no sample pays for another's dead rows or for a
checkpoint it happened to run into).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.test import override_settings

from bench.benchapp.models import (
    BulkUpdateRecord,
    NaiveSaveRecord,
    RotationFloorRecord,
    RotationRecord,
)
from bench.harness import Comparison, Target, Timed, Variant
from data_encryption.encryptor import open_value, seal
from data_encryption.envelope import MAGIC
from data_encryption.fields import EncryptedFieldMixin
from data_encryption.rotation import Batch, Progress, Table, read_rows, write_rows
from data_encryption.services import KeyRotationService

from . import Options

BULK_BATCH = 1000  # the iterator() + bulk_update() loop's, whatever the rotation's batch size

FLOOR = "floor: rotation's reads and CAS writes, no crypto"
ROTATION = "rotate(): re-encryption walk"
CENSUS = "census pass (read-only)"
WHOLE = "whole rotate() call"
NAIVE = "naive obj.save() loop"
BULK = "iterator() + bulk_update()"


def build(options: Options) -> Comparison:
    rows = options.rotation_rows
    postgres = connection.vendor == "postgresql"
    loop_rows = options.loop_rows_postgres if postgres else options.loop_rows_sqlite
    fill(RotationRecord, rows)
    copy_table(RotationRecord, RotationFloorRecord)
    fill(NaiveSaveRecord, loop_rows)
    fill(BulkUpdateRecord, loop_rows)
    batch = options.rotation_batch
    loops: dict[str, Any] = {
        "operations": loop_rows,
        "repeats": options.loop_repeats,
        "warmup": False,
    }
    return Comparison(
        name=(
            f"rotate {rows:,} rows, batches of {batch:,}, {'PostgreSQL' if postgres else 'SQLite'}"
        ),
        operations=rows,
        unit="row",
        rate=True,
        repeats=options.rotation_repeats,
        variants=[
            Variant(FLOOR, _floor(rows, batch), setup=_settle(RotationFloorRecord)),
            Variant(
                ROTATION,
                _rotation(batch),
                Target(max_ratio=2.0) if postgres else None,
                setup=_settle(RotationRecord),
            ),
            Variant(
                f"{NAIVE} ({loop_rows:,} rows)",
                _naive(NaiveSaveRecord),
                Target(min_ratio=40.0 if postgres else 25.0, reference=ROTATION),
                setup=_settle(NaiveSaveRecord),
                **loops,
            ),
            Variant(
                f"{BULK} ({loop_rows:,} rows)",
                _bulk_update(BulkUpdateRecord),
                Target(min_ratio=5.0, reference=ROTATION) if postgres else None,
                setup=_settle(BulkUpdateRecord),
                **loops,
            ),
        ],
    )


# -- data ---------------------------------------------------------------------------------------


def plaintext(index: int) -> str:
    """Row ``index``'s value: 11 characters."""
    return f"{index:011d}"


def fill(model: type[models.Model], rows: int) -> None:
    """Give ``model``'s table ``rows`` rows of sealed values (unless it has them already)."""
    manager = model._default_manager
    if manager.count() == rows:
        return
    manager.all().delete()
    values = [seal(plaintext(index).encode()) for index in range(rows)]
    table = connection.ops.quote_name(model._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        raw_cursor = cursor.cursor
        if connection.vendor == "postgresql" and hasattr(raw_cursor, "copy"):  # psycopg 3
            with raw_cursor.copy(f"COPY {table} (value) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bytea"])
                for value in values:
                    copy.write_row((value,))
        else:
            cursor.executemany(f"INSERT INTO {table} (value) VALUES (%s)", [(v,) for v in values])
    _analyze(model)
    first = stored_values(model)[0]
    assert first[:3] == MAGIC and open_value(first) == plaintext(0).encode(), model.__name__


def copy_table(source: type[models.Model], target: type[models.Model]) -> None:
    """Make ``target`` hold exactly ``source``'s primary keys and stored bytes."""
    target._default_manager.all().delete()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(target._meta.db_table)} (id, value) "
            f"SELECT id, value FROM {quote(source._meta.db_table)}"
        )
    _analyze(target)


def stored_values(model: type[models.Model], limit: int = 1) -> list[bytes]:
    """The stored bytes of the first rows by primary key."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {table} ORDER BY id LIMIT %s", [limit])
        return [bytes(value) for (value,) in cursor.fetchall()]


def _analyze(model: type[models.Model], *, analyze: bool = True) -> None:
    """On PostgreSQL: vacuum the table (with ``analyze``, refresh its statistics too), then
    checkpoint."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            options = " (ANALYZE)" if analyze else ""
            cursor.execute(f"VACUUM{options} {connection.ops.quote_name(model._meta.db_table)}")
            cursor.execute("CHECKPOINT")


def _settle(model: type[models.Model]) -> Callable[[], None]:
    """Before each sample on PostgreSQL: vacuum the table (the last pass left a dead version of
    every row) and checkpoint, so every sample starts from the same state."""
    return lambda: _analyze(model, analyze=False)


# -- the variants -------------------------------------------------------------------------------


def _floor(rows: int, batch_size: int) -> Callable[[], object]:
    table = Table("floor", RotationFloorRecord._meta.db_table, "id", [("value", "value")])

    def run() -> int:
        before = stored_values(RotationFloorRecord)[0]
        after, walked = None, 0
        while records := read_rows(connection, table, after, batch_size):
            batch = Batch(rows=len(records), last_pk=records[-1][0])
            updates = []
            for pk, raw in records:
                old = bytes(raw)
                updates.append((old[:-1] + bytes([old[-1] ^ 1]), pk, old))
            batch.updates["value"] = updates
            with transaction.atomic():
                write_rows(connection, table, batch)
            after, walked = batch.last_pk, walked + batch.rows
        first = stored_values(RotationFloorRecord)[0]
        assert walked == rows and first == before[:-1] + bytes([before[-1] ^ 1]), "floor"
        return walked

    return run


class _Stopwatch(Progress):
    """Notes when the rotation's walk starts and ends, and when its census starts."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    def start_table(self, label: str, total: int, done: int) -> None:
        self.marks.setdefault("walk", time.perf_counter())  # the first of the table's chunks

    def end_table(self, label: str) -> None:
        self.marks["walked"] = time.perf_counter()  # the last

    def phase(self, name: str, detail: str = "") -> None:
        if name == "census":
            self.marks.setdefault("census", time.perf_counter())


def rotate(
    model: type[models.Model], batch_size: int, progress: Progress | None = None
) -> dict[str, Any]:
    """One rotation of ``model``'s table alone, not waiting for other processes' key rings."""
    no_wait = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}
    with override_settings(ENCRYPTION_KEY_ROTATION=no_wait):
        service = KeyRotationService(batch_size=batch_size, progress=progress)
        report = service.rotate(models=[model._meta.label])
    rows = model._default_manager.count()
    assert report["status"] == "completed", report.get("reason")
    assert report["records_reencrypted"] == rows and report["failed_records"] == 0, report
    return report


def _rotation(batch_size: int) -> Callable[[], object]:
    def run() -> Timed:
        stopwatch = _Stopwatch()
        start = time.perf_counter()
        rotate(RotationRecord, batch_size, stopwatch)
        end = time.perf_counter()
        marks = stopwatch.marks
        return Timed(
            marks["walked"] - marks["walk"],
            {CENSUS: end - marks["census"], WHOLE: end - start},
        )

    return run


def _naive(model: type[models.Model]) -> Callable[[], object]:
    def run() -> None:
        before = stored_values(model)[0]
        for obj in model._default_manager.all():
            obj.save()
        _assert_reencrypted(model, before)

    return run


def _bulk_update(model: type[models.Model]) -> Callable[[], object]:
    def run() -> None:
        before = stored_values(model)[0]
        objects = model._default_manager.iterator(chunk_size=BULK_BATCH)
        while chunk := list(islice(objects, BULK_BATCH)):
            model._default_manager.bulk_update(chunk, ["value"])
        _assert_reencrypted(model, before)

    return run


def _assert_reencrypted(model: type[models.Model], before: bytes) -> None:
    after = stored_values(model)[0]
    field = model._meta.get_field("value")
    assert isinstance(field, EncryptedFieldMixin)
    context = field.binding_context  # fields bind values to their column (format version 2)
    assert after != before and open_value(after, context) == plaintext(0).encode(), model.__name__
