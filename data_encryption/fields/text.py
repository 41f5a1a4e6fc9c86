"""Encrypted text fields: text, char, email, URL, slug."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..encryptor import open_value
from ..exceptions import DecryptionError
from ..legacy import is_envelope
from .base import EncryptedFieldMixin


class _EncryptedTextMixin(EncryptedFieldMixin):
    """Text plaintext: ``from_db_value`` is the row-loading hot path, so it decodes inline."""

    blind_index_kind = "text"

    @property
    def plaintext_is_utf8(self) -> bool:
        """Whether this field's plaintext is exactly its text's UTF-8 bytes: ``from_plaintext``
        decodes them, ``get_prep_value`` keeps a ``str`` as it is and ``to_plaintext`` encodes
        it, refusing only more than ``max_length`` characters. A conversion then seals stored
        UTF-8 text as it is (``legacy.direct``). Only the fields of this module promise it: a
        subclass may change any of those methods."""
        return type(self) in _UTF8_TEXT_FIELDS

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

    description = _("Encrypted text")


class EncryptedCharField(_EncryptedTextMixin, models.CharField):
    """Encrypted ``CharField``: ``max_length`` applies to the plaintext (validation and save)."""

    description = _("Encrypted text (up to %(max_length)s)")

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

    description = _("Encrypted email address")
    # With a blind index, "Ann@Example.COM" finds "Ann@example.com" (normaliser="email_lower"
    # also folds the part before the "@").
    default_normaliser = "email"


class EncryptedURLField(EncryptedCharField, models.URLField):
    """Encrypted ``URLField`` (``max_length`` 200 by default, as the plain field)."""

    description = _("Encrypted URL")


class EncryptedSlugField(EncryptedCharField, models.SlugField):
    """Encrypted ``SlugField`` (``max_length`` 50 by default). Unlike the plain field it has no
    index: an index on ciphertext serves no query."""

    description = _("Encrypted slug (up to %(max_length)s)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # SlugField indexes itself unless told not to, which an encrypted field refuses.
        kwargs.setdefault("db_index", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("db_index", None)  # always False here; SlugField spells it out
        return name, path, args, kwargs


_UTF8_TEXT_FIELDS = frozenset(
    {
        EncryptedTextField,
        EncryptedCharField,
        EncryptedEmailField,
        EncryptedURLField,
        EncryptedSlugField,
    }
)
