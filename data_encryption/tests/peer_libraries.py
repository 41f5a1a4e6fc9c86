"""The peer libraries the legacy readers are tested against, imported for the test models.

django-cryptography 1.1, its current release, imports ``django.utils.baseconv`` (removed in
Django 5.0) for its ``TimestampSigner`` alone, which its fields never call. An empty stand-in for
that module lets the library's own field and crypto code run unchanged on Django 5.2 and 6.
"""

import datetime
import sys
import types

try:
    import django.utils.baseconv  # noqa: F401  (Django < 5.0)
except ImportError:
    sys.modules["django.utils.baseconv"] = types.ModuleType("django.utils.baseconv")

import django_cryptography.fields as django_cryptography_fields
import encrypted_fields.fields as fernet_fields
import encrypted_model_fields.fields as encrypted_model_fields

__all__ = ["django_cryptography_fields", "encrypted_model_fields", "fernet_fields"]


def raw_value(model, pk, column):
    """A column's value exactly as the database driver returns it, past every field."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def shapes(raw):
    """Every shape a text column's token reaches a reader in: text, and the UTF-8 bytes a
    bytea column holds after the type change (bytes or memoryview)."""
    if isinstance(raw, str):
        return [raw, raw.encode(), memoryview(raw.encode())]
    return [bytes(raw), memoryview(bytes(raw))]


def same(value):
    """What equality means for a read value: a date-time is its instant (Python calls an
    ambiguous local time unequal to every time in another zone, even the same instant)."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC)
    return value
