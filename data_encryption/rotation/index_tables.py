"""Which tables an index walk reads: every model with indexed fields (found by their
``BlindIndexColumn``s; ``ENCRYPTION_KEY_ROTATION["MODELS"]`` need not list them), each field's
ciphertext column beside its two slot columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from ..index_keys import SLOTS
from .tables import Table, resolve_tables


@dataclass(frozen=True)
class IndexedColumn:
    """One indexed field of a table: the field, its ciphertext column and its slot columns."""

    field: Any  # the encrypted field (an EncryptedFieldMixin with blind_index=True)
    column: str
    slot_columns: dict[str, str]  # slot -> index column name

    @property
    def name(self) -> str:
        return str(self.field.name)

    @property
    def context(self) -> str:
        return bytes(self.field.index_context).decode()

    @property
    def record(self) -> str:
        """What the key table records the field's index as complete under."""
        return str(self.field.index_record)


@dataclass
class IndexTable(Table):
    """A ``Table`` whose read columns are, per indexed field, its ciphertext then its slots
    (``read_rows`` selects them in that order)."""

    indexed: list[IndexedColumn] = field(default_factory=list)

    @property
    def contexts(self) -> list[str]:
        return [column.context for column in self.indexed]


def indexed_fields(model: type[models.Model]) -> list[Any]:
    """The indexed fields of ``model``'s own table (a child model's parent fields are walked
    with the parent)."""
    from ..fields import BlindIndexColumn

    sources = [
        column.source
        for column in model._meta.local_concrete_fields
        if isinstance(column, BlindIndexColumn) and column.slot == SLOTS[0]
    ]
    return [model._meta.get_field(name) for name in sources]


def discover_indexed() -> list[tuple[type[models.Model], list[str]]]:
    """``[(Model, ["field", ...]), ...]`` for every concrete model with indexed fields."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        names = [field.name for field in indexed_fields(model)]
        if names:
            found.append((model, names))
    return found


def chosen_indexed(labels: Sequence[str]) -> list[tuple[type[models.Model], list[str]]]:
    """The indexed fields ``labels`` name (``app_label.Model`` for each of its indexed
    fields, ``app_label.Model.field`` for one); every indexed field when there is none."""
    if not labels:
        return discover_indexed()
    chosen: dict[type[models.Model], list[str]] = {}
    for label in labels:
        parts = label.split(".")
        if len(parts) not in (2, 3):
            raise ImproperlyConfigured(
                f"{label!r}: name an indexed field as app_label.Model.field (or app_label.Model)."
            )
        try:
            model = apps.get_model(".".join(parts[:2]))
        except (LookupError, ValueError):
            raise ImproperlyConfigured(
                f"{label!r}: no installed model {'.'.join(parts[:2])}."
            ) from None
        fields = [f for m in (model, *model._meta.get_parent_list()) for f in indexed_fields(m)]
        if len(parts) == 3:
            try:
                wanted = model._meta.get_field(parts[2])
            except FieldDoesNotExist:
                raise ImproperlyConfigured(
                    f"{model._meta.label} has no field {parts[2]!r}."
                ) from None
            if wanted not in fields:
                raise ImproperlyConfigured(
                    f"{model._meta.label}.{wanted.name} has no blind index: add "
                    "blind_index=True to the field (and migrate) first."
                )
            fields = [wanted]
        elif not fields:
            raise ImproperlyConfigured(f"{model._meta.label} has no field with a blind index.")
        for index_field in fields:
            owner = index_field.model
            names = chosen.setdefault(owner, [])
            if index_field.name not in names:
                names.append(index_field.name)
    return list(chosen.items())


def index_tables(
    configuration: Sequence[tuple[type[models.Model], Sequence[str]]],
) -> list[IndexTable]:
    """The tables to walk for ``configuration`` (as ``chosen_indexed`` returns it)."""
    tables = []
    for model, names in configuration:
        (base,) = resolve_tables([(model, names)])
        indexed, read = [], []
        for name, column in base.columns:
            index_field: Any = model._meta.get_field(name)
            slots = {c.slot: c.column for c in index_field.index_columns}
            indexed.append(IndexedColumn(index_field, column, slots))
            read += [(name, column), *((f"{name}@{s}", slots[s]) for s in SLOTS)]
        tables.append(
            IndexTable(
                base.label,
                base.table,
                base.pk_column,
                read,
                base.bindings,
                base.legacy,
                base.encrypted,
                indexed=indexed,
            )
        )
    return tables
