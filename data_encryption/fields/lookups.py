"""The lookups of an encrypted field: the database cannot compare ciphertext, so only ``isnull``
(and ``= None``) is answered; any other lookup is an ``EncryptedLookupError`` that says what to
do instead of silently matching nothing."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import lookups

from ..exceptions import EncryptedLookupError
from .messages import field_label


class EncryptedExact(lookups.Exact):
    """``field=None`` becomes ``isnull`` (Django does that after building this); anything else
    cannot be answered on ciphertext."""

    def __init__(self, lhs: Any, rhs: Any) -> None:
        if rhs is not None:
            raise lookup_error(lhs.output_field, "exact")
        super().__init__(lhs, rhs)


def lookup_error(field: models.Field, lookup: str) -> EncryptedLookupError:
    # The field's class and name first, as a user reading a traceback from a filter() wrote them.
    return EncryptedLookupError(
        f"{type(field).__name__} '{field.name}' does not support '{lookup}' lookups: "
        f"{field_label(field)} is encrypted, so the database cannot answer them (every value is "
        "random-looking ciphertext). Only 'isnull' works" + _index_hint(field)
    )


def _index_hint(field: models.Field) -> str:
    if getattr(field, "blind_index", False):
        folds = "; 'iexact' too" if getattr(field, "normaliser_folds_case", False) else ""
        return (
            f", and 'exact' and 'in' from its blind index{folds}. Filter on another field, or "
            "load the rows and compare in Python."
        )
    advice = ". Filter on another field, or load the rows and compare in Python"
    if getattr(field, "blind_index_kind", None):
        return f"{advice}; for exact-match search, add blind_index=True (docs/search.md)."
    return f"{advice}."
