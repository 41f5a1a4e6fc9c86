"""A raw column read by its name: the hand-written property pattern's ``decrypt_column``.

A raw ``BinaryField`` (``_ssn``) that a property fills with ``EncryptionService.encrypt`` has no
field of ours to know its context or whether it is in transition; ``decrypt_column(value,
"customers.Customer._ssn")`` looks both up by the column's name, so the property reads the
column exactly as an encrypted field reads its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models

from ..conf import register_cache
from ..conf.settings import encryption_settings
from ..encryptor import decrypt_text
from ..envelope import Binary
from ..exceptions import DecryptionError
from . import field_named, legacy_readers
from .base import LegacyReader, LegacyValueError, is_envelope, is_fernet_token


@dataclass(frozen=True)
class RawColumn:
    """What reading one raw column needs: its field, the context its values are bound to
    (``None``: unbound) and, while it is in transition, the reader of its old values."""

    label: str
    field: models.Field
    context: str | None
    reader: LegacyReader | None


_columns: dict[str, RawColumn] = {}


@register_cache
def _forget_columns() -> None:
    _columns.clear()


def raw_column(column: str) -> RawColumn:
    """The raw column ``"app_label.Model.field"``, resolved once per setting change."""
    found = _columns.get(column)
    if found is None:
        found = _columns[column] = _resolve(column)
    return found


def decrypt_column(value: Binary | str | None, column: str) -> str | None:
    """``EncryptionService.decrypt`` for the value of raw column ``column``
    (``"app_label.Model.field"``): with the context ``ENCRYPTION_KEY_ROTATION["MODELS"]`` gives
    the column, and, while the column is in ``DATA_ENCRYPTION_LEGACY_COLUMNS``, a value that is
    not an envelope read through the column's reader. ``None`` gives ``None``."""
    if value is None:
        return None
    spec = _columns.get(column) or raw_column(column)
    try:
        return decrypt_text(value, spec.context)
    except (DecryptionError, TypeError) as exc:
        # An envelope that does not open was altered: never handed to a reader as plaintext.
        if is_envelope(value):
            raise
        if spec.reader is None:
            if isinstance(exc, DecryptionError) and is_fernet_token(value):
                raise  # a legacy token of this app, with its own advice
            error = _not_encrypted(spec)
        else:
            return _as_text(spec.reader.read(value, spec.field), spec)
    raise error from None


def _as_text(value: Any, spec: RawColumn) -> str:
    """The text a reader read from a raw column: what ``encrypt`` would have been given."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # SQLite keeps a number that an integer column held as a number
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            problem = "is not UTF-8 text"
    else:
        problem = f"is a {type(value).__name__}, not text"
    raise LegacyValueError(
        f"A value of {spec.label} from before it was encrypted {problem}, so decrypt_column "
        "cannot return it as text; fix the row, or read the column with decrypt_bytes()."
    )


def _not_encrypted(spec: RawColumn) -> DecryptionError:
    return DecryptionError(
        f"A value of {spec.label} is not encrypted (it is plaintext or another library's "
        "ciphertext). If the column held such values before it became encrypted, list it in "
        "DATA_ENCRYPTION_LEGACY_COLUMNS and convert it with encrypt_existing "
        "(docs/adoption.md)."
    )


def _resolve(column: str) -> RawColumn:
    if not isinstance(column, str):
        raise TypeError(
            f"decrypt_column() names its column as 'app_label.Model.field', not "
            f"{type(column).__name__}."
        )
    field = field_named(column, where="decrypt_column()")
    concrete = field.model._meta.concrete_model or field.model
    label_lower = concrete._meta.label_lower
    context = None
    for label, names in encryption_settings.rotation_contexts.items():
        if label.lower() == label_lower and field.name in names:
            context = names[field.name]
    return RawColumn(
        f"{concrete._meta.label}.{field.name}",
        field,
        context,
        legacy_readers().get((label_lower, field.name)),
    )
