"""Loading rows: ``list(Model.objects.all())`` and reading both fields of every row.

The same rows are stored four ways (see ``bench.benchapp.models``): plain fields (the
baseline), this app's encrypted fields, django-fernet-encrypted-fields, and a bare AES-GCM field
that is the floor for any field built on ``AESGCM``. Every encrypted variant decrypts in
``from_db_value``, so the whole cost lands in the timed load. Our target is against the floor,
not plain fields: it bounds what our field adds, not what decrypting costs at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection, models

from bench.benchapp.models import (
    BareAesGcmRecord,
    EnvelopeRecord,
    FernetFieldsRecord,
    PlainRecord,
)
from bench.harness import Comparison, Target, Variant

from . import Options

PLAIN = "plain fields"
OURS = "EncryptedCharField + EncryptedTextField"
FERNET_FIELDS = "django-fernet-encrypted-fields"
FLOOR = "floor: bare AESGCM field"

INSERT_BATCH = 1000


def build(options: Options) -> Comparison:
    rows = options.rows
    for model in (PlainRecord, EnvelopeRecord, FernetFieldsRecord, BareAesGcmRecord):
        _fill(model, rows)
    for model in (EnvelopeRecord, FernetFieldsRecord, BareAesGcmRecord):
        _assert_stored_encrypted(model)
    return Comparison(
        name=f"load {rows:,} rows, 2 fields",
        unit="load",
        variants=[
            Variant(PLAIN, _load(PlainRecord, rows)),
            Variant(OURS, _load(EnvelopeRecord, rows), Target(max_ratio=1.25, reference=FLOOR)),
            # "Ours is faster" = django-fernet-encrypted-fields takes longer than ours.
            Variant(
                FERNET_FIELDS,
                _load(FernetFieldsRecord, rows),
                Target(min_ratio=1.0, reference=OURS),
            ),
            Variant(FLOOR, _load(BareAesGcmRecord, rows)),
        ],
    )


def row_values(index: int) -> tuple[str, str]:
    """Row ``index``'s name (about 20 characters) and notes (about 200)."""
    name = f"Customer {index:06d} Ltd"
    notes = f"Account {index}: " + "prefers email; invoices quarterly; net 30 terms. " * 4
    return name, notes


def _fill(model: type[models.Model], rows: int) -> None:
    model._default_manager.all().delete()
    objects = [model(name=name, notes=notes) for name, notes in map(row_values, range(rows))]
    model._default_manager.bulk_create(objects, batch_size=INSERT_BATCH)


def _assert_stored_encrypted(model: type[models.Model]) -> None:
    """Guard against timing a misconfigured field that stores plaintext."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name, notes FROM {model._meta.db_table} ORDER BY id LIMIT 1")
        stored = cursor.fetchone()
    for column, plaintext in zip(stored, row_values(0), strict=True):
        raw = column.encode() if isinstance(column, str) else bytes(column)
        assert plaintext.encode() not in raw, f"{model.__name__} stores plaintext"


def _load(model: type[models.Model], rows: int) -> Callable[[], object]:
    def run() -> int:
        characters = 0
        row: Any  # each of the four record models has name and notes
        for row in list(model._default_manager.all()):
            characters += len(row.name) + len(row.notes)
        return characters

    expected = sum(len(name) + len(notes) for name, notes in map(row_values, range(rows)))
    first: Any = model._default_manager.order_by("pk").first()
    assert first is not None and (first.name, first.notes) == row_values(0), model.__name__
    assert run() == expected, model.__name__
    return run
