"""Encrypted model fields: declare a field instead of writing a property.

Each field behaves like the Django field it is named after (forms, validation, admin) but its
column holds the binary envelope of ``docs/format.md``. Values are encrypted in
``get_db_prep_value`` and decrypted in ``from_db_value``, so ``save``, ``bulk_create``,
``bulk_update``, ``update``, ``values()`` and ``values_list()`` all see plaintext in Python and
ciphertext in the database.

The database cannot compare ciphertext, so the only lookup allowed is ``isnull`` (and ``=None``);
any other raises ``EncryptedLookupError`` (a ``FieldError``) instead of silently matching
nothing. ``unique``, ``db_index`` and ``primary_key`` are refused for the same reason.

An expression written to an encrypted column must yield ciphertext (``F()`` of an encrypted
field, ``Value(x, output_field=<encrypted field>)``); any other, and ``db_default``, is refused,
because the database would store its result unencrypted.
"""

from __future__ import annotations

from .base import EncryptedFieldMixin
from .binary import EncryptedBinaryField
from .dates import EncryptedDateField, EncryptedDateTimeField
from .json import EncryptedJSONField
from .numbers import (
    EncryptedBigIntegerField,
    EncryptedBooleanField,
    EncryptedDecimalField,
    EncryptedFloatField,
    EncryptedIntegerField,
)
from .text import EncryptedCharField, EncryptedEmailField, EncryptedTextField

ENCRYPTED_FIELD_TYPES: tuple[type[EncryptedFieldMixin], ...] = (
    EncryptedTextField,
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedIntegerField,
    EncryptedBigIntegerField,
    EncryptedDecimalField,
    EncryptedFloatField,
    EncryptedBooleanField,
    EncryptedDateField,
    EncryptedDateTimeField,
    EncryptedJSONField,
    EncryptedBinaryField,
)

__all__ = [
    "ENCRYPTED_FIELD_TYPES",
    "EncryptedBigIntegerField",
    "EncryptedBinaryField",
    "EncryptedBooleanField",
    "EncryptedCharField",
    "EncryptedDateField",
    "EncryptedDateTimeField",
    "EncryptedDecimalField",
    "EncryptedEmailField",
    "EncryptedFieldMixin",
    "EncryptedFloatField",
    "EncryptedIntegerField",
    "EncryptedJSONField",
    "EncryptedTextField",
]
