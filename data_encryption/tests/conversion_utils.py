"""Helpers for the conversion tests: columns in transition, and values put back in the form a
column holds right after its type change to an encrypted field.

That form is written with raw SQL here (until ``EncryptField(..., convert=False)`` from the
migration operations lands, which leaves a column exactly so): on SQLite each value as Django
stored it for the plain field (text, an integer); on PostgreSQL a ``bytea`` holding the UTF-8
text of the value.
"""

import json

from django.db import connection, transaction
from django.test import override_settings

from data_encryption.envelope import MAGIC
from data_encryption.tests.testapp.models import Patient

TEXT_READER = "plaintext"
LABEL = "data_encryption_tests.Patient"
COLUMNS = ("code", "notes", "profile", "visits")
PLAINTEXT_COLUMNS = {f"{LABEL}.{name}": TEXT_READER for name in COLUMNS}


def in_transition(columns=None):
    """``override_settings`` with ``columns`` in ``DATA_ENCRYPTION_LEGACY_COLUMNS`` (default:
    the Patient columns the tests convert, plaintext)."""
    return override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS=columns or PLAINTEXT_COLUMNS)


def legacy_form(value):
    """``value`` (text, an integer, or bytes taken as they are) as the column holds it."""
    if value is None or isinstance(value, bytes):
        return value
    if connection.vendor == "postgresql":
        return str(value).encode()
    return value


def json_text(value):
    """A JSON value as a plain ``JSONField`` stored it."""
    return json.dumps(value)


def _quoted(name):
    return connection.ops.quote_name(name)


def store_legacy(pk, **values):
    """Put raw ``values`` (by field name) into row ``pk`` of Patient, in the legacy form."""
    table = _quoted(Patient._meta.db_table)
    with connection.cursor() as cursor:
        for name, value in values.items():
            column = _quoted(Patient._meta.get_field(name).column)
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE id = %s", [legacy_form(value), pk]
            )


def insert_legacy(rows):
    """Insert Patients whose every column is in the legacy form: ``rows`` of
    ``(name, code, notes, profile_json_text, visits)``. Returns their primary keys."""
    table = _quoted(Patient._meta.db_table)
    columns = ", ".join(_quoted(name) for name in ("name", *COLUMNS))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s)",
            [(row[0], *(legacy_form(value) for value in row[1:])) for row in rows],
        )
    return list(Patient.objects.order_by("pk").values_list("pk", flat=True))


def stored(pk, name):
    """The raw value of field ``name`` of Patient ``pk`` (``bytes`` for a binary value)."""
    table = _quoted(Patient._meta.db_table)
    column = _quoted(Patient._meta.get_field(name).column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        raw = cursor.fetchone()[0]
    return bytes(raw) if isinstance(raw, memoryview) else raw


def is_envelope(raw):
    return isinstance(raw, bytes) and raw.startswith(MAGIC)
