"""The raw column of the hand-written property pattern as the operations' encrypted side: a
``models.BinaryField`` (``_ssn``) filled by ``EncryptionService.encrypt``, which rotation covers
because ``ENCRYPTION_KEY_ROTATION["MODELS"]`` names it. Its values are sealed as ``encrypt`` seals
text (bound when ``MODELS`` gives the column a context) and given back as that text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models

from ..conf import encryption_settings
from ..encryptor import context_bytes
from ..fields import EncryptedFieldMixin
from ..fields.binding import ColumnBinding
from .column_types import column_type


def is_raw(field: models.Field) -> bool:
    """Whether ``field`` is a raw binary column (not one of our encrypted fields)."""
    return isinstance(field, models.BinaryField) and not isinstance(field, EncryptedFieldMixin)


def check_raw_column(field: models.Field, where: str) -> None:
    """Refuse a raw column that rotation does not cover: its values would stay on this data key
    forever, and neither ``encrypt_existing`` nor the census would see them."""
    if _names(field) is None:
        label = field.model._meta.label
        raise TypeError(
            f"{where} makes a raw BinaryField hold values that EncryptionService encrypts, "
            f"which only a column in ENCRYPTION_KEY_ROTATION['MODELS'] gets rotated: add "
            f"{{{label!r}: [{field.name!r}]}} to it (with the context your property passes, if "
            "any: {'<model>': {'<field>': '<context>'}}), then migrate again."
        )


def binding_of(field: models.Field) -> ColumnBinding | None:
    """What the values of ``field``'s column are bound to: an encrypted field's own binding; for
    a raw column, the context ``ENCRYPTION_KEY_ROTATION["MODELS"]`` gives it (unbound if none)."""
    if not is_raw(field):
        return getattr(field, "binding", None)
    names = _names(field)
    context = names.get(field.name) if isinstance(names, dict) else None
    return None if not context else ColumnBinding(context_bytes(context))


def raw_plaintext(value: Any) -> bytes:
    """The plaintext bytes of what a legacy reader read from a raw column (its text, its bytes,
    or a number SQLite kept as a number)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"a raw column holds text or bytes, not a {type(value).__name__}")


def stored_as(plain: Any, encrypted: Any, connection: Any) -> Callable[[Any], Any]:
    """How a value is written into the binary column before it becomes ``plain``'s again.

    An encrypted field's value (its Python value) is written as the plain field stores it
    (SQLite keeps that through the table rebuild), or on PostgreSQL as the bytes the plain type
    is parsed from. The plain field's own ``get_db_prep_save`` decides, so a value going back to
    another library's field is encrypted again by that library (its field is in the migration
    state, so it is installed), and the column reads as it did before the conversion. A binary
    plain column takes what the plain field writes as it is.

    A raw column's value is its plaintext bytes: on PostgreSQL as they are (the UTF-8 text the
    plain type is parsed from), on SQLite as text (the rebuild gives it the plain column's
    affinity), or as bytes for a plain binary column.
    """
    postgresql = connection.vendor == "postgresql"
    if is_raw(encrypted):
        if postgresql or isinstance(plain, models.BinaryField):
            return bytes
        return lambda plaintext: plaintext.decode()
    if not postgresql:
        return lambda value: plain.get_db_prep_save(value, connection)
    # A binary plain column (BinaryField, another library's ciphertext) takes its bytes as they
    # are through the type change: the value is written as the plain field writes it.
    plain_is_binary = column_type(plain, connection).lower() == "bytea"

    def plaintext(value: Any) -> Any:
        prepared = plain.get_db_prep_save(value, connection)
        if plain_is_binary:
            return prepared
        if isinstance(prepared, str):
            return prepared.encode()
        return bytes(encrypted.to_plaintext(encrypted.get_prep_value(value)))

    return plaintext


def _names(field: models.Field) -> list[str] | dict[str, str] | None:
    """The entry of ``ENCRYPTION_KEY_ROTATION["MODELS"]`` that lists ``field``, if one does."""
    label_lower = field.model._meta.label_lower
    configured = encryption_settings.rotation_option("MODELS")
    for label, names in configured.items():
        if str(label).lower() == label_lower and field.name in names:
            return names
    return None
