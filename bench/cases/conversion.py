"""Converting a plaintext column in place: ``encrypt_existing`` against its floor and a naive loop.

The table has ``rotation_rows`` rows (a million by default) of one ``EncryptedCharField`` column
in transition (``DATA_ENCRYPTION_LEGACY_COLUMNS``, the plaintext reader), each holding its
11-character plaintext as the column-type change leaves it: on PostgreSQL a ``bytea`` of its UTF-8
text, on SQLite the text. The rows are loaded with ``COPY`` (PostgreSQL) or one ``executemany``
(SQLite) before every sample, untimed, since a sample converts them all.

- *floor*, the baseline, measured as the rotation case measures its own: the conversion's
  database work with the reading and sealing taken out. ``read_rows`` and ``write_rows`` walk a
  table holding the same bytes (a plain ``BinaryField``) by keyset in the same batches, each batch
  one transaction with the compare-and-swap statement; each value is replaced by bytes of an
  envelope's length (47) made without any cryptography, so the writes are the same size.
- *encrypt_existing*: ``KeyRotationService(batch_size=...).encrypt_existing([the column])``; the
  sample is the walk only (the ``Progress`` hooks, as in the rotation case); the census after it
  and the whole call are reported beside it.
- *naive loop*: ``for obj in Model.objects.all(): obj.save()`` on ``loop_rows`` rows of the same
  shape in transition; every object is read through the reader and saved sealed, one commit each.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection, models, transaction

from bench.benchapp.models import ConversionFloorRecord, ConversionRecord, NaiveConversionRecord
from bench.harness import Comparison, Target, Timed, Variant
from data_encryption.encryptor import open_value
from data_encryption.envelope import MAGIC
from data_encryption.rotation import Batch, Progress, Table, read_rows, write_rows
from data_encryption.services import KeyRotationService

from . import Options
from .rotation import _analyze, _Stopwatch, plaintext, stored_values

FLOOR = "floor: the walk's reads and CAS writes, no reading or sealing"
CONVERSION = "encrypt_existing(): conversion walk"
CENSUS = "census pass (read-only)"
WHOLE = "whole encrypt_existing() call"
NAIVE = "naive obj.save() loop"
ENVELOPE_SIZE = 47  # an 11-byte value sealed: header 8, nonce 12, ciphertext 11, tag 16


def build(options: Options) -> Comparison:
    rows = options.rotation_rows
    postgres = connection.vendor == "postgresql"
    loop_rows = options.loop_rows_postgres if postgres else options.loop_rows_sqlite
    batch = options.rotation_batch
    return Comparison(
        name=(
            f"encrypt_existing {rows:,} plaintext rows, batches of {batch:,}, "
            f"{'PostgreSQL' if postgres else 'SQLite'}"
        ),
        operations=rows,
        unit="row",
        rate=True,
        repeats=options.rotation_repeats,
        variants=[
            Variant(FLOOR, _floor(rows, batch), setup=_legacy(ConversionFloorRecord, rows)),
            Variant(
                CONVERSION,
                _conversion(rows, batch),
                Target(max_ratio=2.0) if postgres else None,
                setup=_legacy(ConversionRecord, rows),
            ),
            Variant(
                f"{NAIVE} ({loop_rows:,} rows)",
                _naive(loop_rows),
                Target(min_ratio=40.0 if postgres else 25.0, reference=CONVERSION),
                setup=_legacy(NaiveConversionRecord, loop_rows),
                operations=loop_rows,
                repeats=options.loop_repeats,
                warmup=False,
            ),
        ],
    )


def legacy_form(index: int) -> bytes | str:
    """Row ``index``'s plaintext as the column holds it after the type change."""
    return plaintext(index).encode() if connection.vendor == "postgresql" else plaintext(index)


def fill_legacy(model: type[models.Model], rows: int) -> None:
    """Give ``model``'s table ``rows`` rows of plaintext in the legacy form, replacing any."""
    table = connection.ops.quote_name(model._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")
        raw_cursor = cursor.cursor
        if connection.vendor == "postgresql" and hasattr(raw_cursor, "copy"):  # psycopg 3
            with raw_cursor.copy(f"COPY {table} (value) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bytea"])
                for index in range(rows):
                    copy.write_row((legacy_form(index),))
        else:
            cursor.executemany(
                f"INSERT INTO {table} (value) VALUES (%s)",
                [(legacy_form(index),) for index in range(rows)],
            )
    _analyze(model)


def _legacy(model: type[models.Model], rows: int) -> Callable[[], None]:
    """Before each sample: the table back in its legacy form, vacuumed, checkpointed."""
    return lambda: fill_legacy(model, rows)


def _floor(rows: int, batch_size: int) -> Callable[[], object]:
    table = Table("floor", ConversionFloorRecord._meta.db_table, "id", [("value", "value")])
    padding = b"\xff" * (ENVELOPE_SIZE - 11)

    def run() -> int:
        after, walked = None, 0
        while records := read_rows(connection, table, after, batch_size):
            batch = Batch(rows=len(records), last_pk=records[-1][0])
            batch.updates["value"] = [(padding + _bytes(raw), pk, raw) for pk, raw in records]
            with transaction.atomic():
                write_rows(connection, table, batch)
            after, walked = batch.last_pk, walked + batch.rows
        first = stored_values(ConversionFloorRecord)[0]
        assert walked == rows and first == padding + plaintext(0).encode(), "floor"
        return walked

    return run


def _bytes(raw: bytes | memoryview | str) -> bytes:
    return raw.encode() if isinstance(raw, str) else bytes(raw)  # SQLite keeps the text


def convert(model: type[models.Model], batch_size: int, progress: Progress | None = None) -> int:
    """One ``encrypt_existing`` of ``model``'s column; the values it converted."""
    service = KeyRotationService(batch_size=batch_size, progress=progress)
    report = service.encrypt_existing([f"{model._meta.label}.value"])
    rows = model._default_manager.count()
    assert report.status == "completed", report.reason
    assert report.records_reencrypted == rows and report.failed_records == 0, report.as_dict()
    return report.records_reencrypted


def _conversion(rows: int, batch_size: int) -> Callable[[], object]:
    def run() -> Timed:
        stopwatch = _Stopwatch()
        start = time.perf_counter()
        convert(ConversionRecord, batch_size, stopwatch)
        end = time.perf_counter()
        _assert_converted(ConversionRecord)
        marks = stopwatch.marks
        return Timed(
            marks["walked"] - marks["walk"],
            {CENSUS: end - marks["census"], WHOLE: end - start},
        )

    return run


def _naive(rows: int) -> Callable[[], object]:
    def run() -> None:
        for obj in NaiveConversionRecord._default_manager.all():
            obj.save()
        _assert_converted(NaiveConversionRecord)

    return run


def _assert_converted(model: type[models.Model]) -> None:
    first = stored_values(model)[0]
    field = model._meta.get_field("value")
    context = getattr(field, "binding_context", None)
    assert first[:3] == MAGIC and open_value(first, context) == plaintext(0).encode(), model
