"""The system checks of an encrypted field on its model: no index or unique constraint over it
(E013), and no ``bind_to_pk`` where the database assigns the primary key (E029)."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import models

from .index_columns import BlindIndexUnique

_INDEX_HINT = "An index on ciphertext cannot serve any query; remove it."
_UNIQUE_HINT = (
    "Ciphertext differs on every save, so uniqueness over it enforces nothing; remove the field "
    "from it, or declare the field with blind_index=True, unique=True (docs/search.md)."
)


def field_errors(field: Any) -> list[checks.CheckMessage]:
    """What ``field`` (an encrypted field) does wrong on its model; nothing before it has one."""
    model = getattr(field, "model", None)
    if model is None:
        return []
    errors = _index_errors(field, model._meta)
    if field.bind_to_pk and isinstance(
        model._meta.pk, models.AutoField | models.BigAutoField | models.SmallAutoField
    ):
        errors.append(
            checks.Error(
                f"{model.__name__}.{field.name} is bound to its row's primary key "
                "(bind_to_pk=True), but the database assigns that key on insert, so "
                "no value could be saved.",
                hint="Give the model a primary key set before insert, such as "
                "UUIDField(primary_key=True, default=uuid.uuid4), or remove bind_to_pk.",
                obj=field,
                id="data_encryption.E029",
            )
        )
    return errors


def _index_errors(field: Any, opts: Any) -> list[checks.CheckMessage]:
    # Unique constraints are indexes too, and worse: validate_unique() would query this
    # field with '=' and raise EncryptedLookupError from full_clean().
    found = [
        (f"Index '{index.name}'", _INDEX_HINT)
        for index in opts.indexes
        if field.name in {name for name, _order in index.fields_orders}
    ]
    found += [
        (f"Unique constraint '{constraint.name}'", _UNIQUE_HINT)
        for constraint in opts.constraints
        if isinstance(constraint, models.UniqueConstraint)
        and not isinstance(constraint, BlindIndexUnique)  # enforced on the index column
        and field.name in constraint.fields
    ]
    found += [
        (f"unique_together {tuple(together)!r}", _UNIQUE_HINT)
        for together in opts.unique_together
        if field.name in together
    ]
    return [
        checks.Error(
            f"{what} includes encrypted field '{field.name}'.",
            hint=hint,
            obj=field,
            id="data_encryption.E013",
        )
        for what, hint in found
    ]
