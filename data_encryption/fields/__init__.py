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
from .identifiers import EncryptedGenericIPAddressField, EncryptedUUIDField
from .index_columns import BlindIndexColumn, BlindIndexUnique
from .json import EncryptedJSONField
from .numbers import (
    EncryptedBigIntegerField,
    EncryptedBooleanField,
    EncryptedDecimalField,
    EncryptedFloatField,
    EncryptedIntegerField,
    EncryptedPositiveBigIntegerField,
    EncryptedPositiveIntegerField,
    EncryptedPositiveSmallIntegerField,
    EncryptedSmallIntegerField,
)
from .text import (
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedSlugField,
    EncryptedTextField,
    EncryptedURLField,
)
from .times import EncryptedDurationField, EncryptedTimeField

ENCRYPTED_FIELD_TYPES: tuple[type[EncryptedFieldMixin], ...] = (
    EncryptedTextField,
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedURLField,
    EncryptedSlugField,
    EncryptedIntegerField,
    EncryptedBigIntegerField,
    EncryptedSmallIntegerField,
    EncryptedPositiveIntegerField,
    EncryptedPositiveSmallIntegerField,
    EncryptedPositiveBigIntegerField,
    EncryptedDecimalField,
    EncryptedFloatField,
    EncryptedBooleanField,
    EncryptedDateField,
    EncryptedDateTimeField,
    EncryptedTimeField,
    EncryptedDurationField,
    EncryptedUUIDField,
    EncryptedGenericIPAddressField,
    EncryptedJSONField,
    EncryptedBinaryField,
)

__all__ = [
    "ENCRYPTED_FIELD_TYPES",
    "BlindIndexColumn",
    "BlindIndexUnique",
    "EncryptedBigIntegerField",
    "EncryptedBinaryField",
    "EncryptedBooleanField",
    "EncryptedCharField",
    "EncryptedDateField",
    "EncryptedDateTimeField",
    "EncryptedDecimalField",
    "EncryptedDurationField",
    "EncryptedEmailField",
    "EncryptedFieldMixin",
    "EncryptedFloatField",
    "EncryptedGenericIPAddressField",
    "EncryptedIntegerField",
    "EncryptedJSONField",
    "EncryptedPositiveBigIntegerField",
    "EncryptedPositiveIntegerField",
    "EncryptedPositiveSmallIntegerField",
    "EncryptedSlugField",
    "EncryptedSmallIntegerField",
    "EncryptedTextField",
    "EncryptedTimeField",
    "EncryptedURLField",
    "EncryptedUUIDField",
]
