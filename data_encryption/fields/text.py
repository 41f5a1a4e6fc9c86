"""Encrypted text fields: text, char, email."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import models

from ..encryptor import open_value
from ..exceptions import DecryptionError
from ..legacy import is_envelope
from .base import EncryptedFieldMixin


class _EncryptedTextMixin(EncryptedFieldMixin):
    """Text plaintext: ``from_db_value`` is the row-loading hot path, so it decodes inline."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        if self.bind_to_pk:
            return super().from_db_value(value, expression, connection)
        try:
            return open_value(value, self.binding_context).decode()
        except UnicodeDecodeError:
            raise self._wrong_type() from None
        except DecryptionError:
            if is_envelope(value):
                raise
        # Not an envelope: the common path reads it if its column is in transition, or says why
        # it cannot (outside the try, so the first error is not chained to it).
        return super().from_db_value(value, expression, connection)


class EncryptedTextField(_EncryptedTextMixin, models.TextField):
    """Encrypted ``TextField``."""


class EncryptedCharField(_EncryptedTextMixin, models.CharField):
    """Encrypted ``CharField``: ``max_length`` applies to the plaintext (validation and save)."""

    def _check_max_length_attribute(self, **kwargs: Any) -> list[checks.CheckMessage]:
        # The column is binary on every database, so no length is needed for the DDL.
        if self.max_length is None:
            return []
        return super()._check_max_length_attribute(**kwargs)  # type: ignore[misc]

    def to_plaintext(self, value: Any) -> bytes:
        text = str(value)
        if self.max_length is not None and len(text) > self.max_length:
            raise ValueError(
                f"{self.model.__name__}.{self.name} holds at most {self.max_length} characters; "
                f"this value has {len(text)}. Validate with full_clean() or shorten it."
            )
        return text.encode("utf-8")


class EncryptedEmailField(EncryptedCharField, models.EmailField):
    """Encrypted ``EmailField``."""
