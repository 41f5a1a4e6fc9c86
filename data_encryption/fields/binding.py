"""Where a field's values are bound: the column they live in, and with ``bind_to_pk`` their row.

A bound value (format version 2) authenticates its context besides its header, so a value
copied into another column, model or row fails to decrypt instead of being read there. The
context of a column is ``app_label.Model.field`` of the concrete model (or the field's
``context=``, to keep a name across a rename); a row's adds ``#`` and the primary key's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from ..encryptor import open_value

PK_SEPARATOR = b"#"


@dataclass(frozen=True)
class ColumnBinding:
    """What the values of one column are bound to: ``context`` (UTF-8), and when ``pk_field``
    is set, each row's primary key too. The rotation reads it to rewrite values bound alike."""

    context: bytes
    pk_field: models.Field | None = None

    def for_row(self, pk: Any) -> bytes:
        """The context of the value in row ``pk`` (the raw primary key a query returned)."""
        if self.pk_field is None:
            return self.context
        return self.context + PK_SEPARATOR + pk_text(self.pk_field, pk).encode()


def pk_text(pk_field: models.Field, pk: Any) -> str:
    """A primary key as a context spells it: ``str`` of its Python value, so a UUID read back
    from SQLite (32 hex digits) and from PostgreSQL (a ``UUID``) give the same text."""
    return str(pk_field.to_python(pk))


class RowBoundValue:
    """A value on its way to a ``bind_to_pk`` column, with its row's context (from
    ``pre_save``, the only step that sees the instance)."""

    __slots__ = ("context", "value")

    def __init__(self, value: Any, context: bytes) -> None:
        self.value, self.context = value, context

    def __repr__(self) -> str:
        return "<RowBoundValue>"


class SealedValue:
    """A ``bind_to_pk`` value as loaded, not yet decrypted: ``from_db_value`` cannot see the row's
    primary key, so the model attribute opens it on first access (``RowBoundAttribute``).
    ``values()`` and ``values_list()`` return it as it is."""

    __slots__ = ("stored",)

    def __init__(self, stored: bytes) -> None:
        self.stored = stored

    def __repr__(self) -> str:
        return f"<SealedValue {len(self.stored)}B>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedValue) and other.stored == self.stored

    __hash__ = None  # type: ignore[assignment]


class RowBoundAttribute(DeferredAttribute):
    """The model attribute of a ``bind_to_pk`` field: opens a loaded ``SealedValue`` with the
    instance's primary key the first time it is read, and keeps the plaintext."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, SealedValue):
            field: Any = self.field
            value = field.from_plaintext_checked(
                open_value(value.stored, field.binding.for_row(instance.pk))
            )
            instance.__dict__[field.attname] = value
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value
