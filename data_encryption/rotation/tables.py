"""Which tables a rotation walks: the configured models, resolved to tables and columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from ..conf import encryption_settings
from ..encryptor import context_bytes
from ..fields.binding import ColumnBinding
from ..legacy import LegacyColumn, reader_for_field
from .indexes import IndexedColumn, indexed_column

ModelConfiguration = Sequence[tuple[type[models.Model], Sequence[str]]]


@dataclass
class Table:
    """One table to walk: its primary key and the encrypted columns to rewrite, with what each
    column's values are bound to (a column absent from ``bindings`` holds unbound values)."""

    label: str
    table: str
    pk_column: str
    columns: list[tuple[str, str]]  # (field name, column name)
    bindings: dict[str, ColumnBinding] = field(default_factory=dict)  # by field name
    # Columns in transition (DATA_ENCRYPTION_LEGACY_COLUMNS), by field name: their values from
    # before the column was ours are read, counted and rewritten through the column's reader.
    legacy: dict[str, LegacyColumn] = field(default_factory=dict)
    # The encrypted fields' names: their columns are binary, so a rewrite is always binary (a
    # raw column keeps the form its value had: text stays text).
    encrypted: set[str] = field(default_factory=set)
    # The indexed fields' blind indexes, by field name: a legacy value converted gets its index
    # in the same write (``indexes``).
    indexes: dict[str, IndexedColumn] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Table {self.label}: {', '.join(name for name, _ in self.columns)}>"


def discover_models() -> list[tuple[type[models.Model], list[str]]]:
    """``[(Model, ["field", ...]), ...]``: every model with encrypted fields, plus the raw
    columns named in ``ENCRYPTION_KEY_ROTATION["MODELS"]`` (``{"app.Model": ["_ssn"]}``)."""
    from ..fields import EncryptedFieldMixin

    found: dict[type[models.Model], list[str]] = {}
    for model in apps.get_models():
        names = [
            model_field.name
            for model_field in model._meta.local_concrete_fields
            if isinstance(model_field, EncryptedFieldMixin)
        ]
        if names:
            found[model] = names
    for label, names in encryption_settings.rotation_models.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            raise ImproperlyConfigured(
                f"ENCRYPTION_KEY_ROTATION['MODELS'] names {label!r}, which is not an "
                "installed model. Use 'app_label.ModelName'."
            ) from None
        existing = found.setdefault(model, [])
        existing.extend(name for name in names if name not in existing)
    return list(found.items())


def resolve_tables(configuration: ModelConfiguration) -> list[Table]:
    """Turn ``[(Model, ["field", ...]), ...]`` into tables, checking every name. An encrypted
    field's values are bound as the field binds them; a raw column's as the dict form of
    ``ENCRYPTION_KEY_ROTATION["MODELS"]`` says (unbound when it says nothing)."""
    from ..fields import EncryptedFieldMixin

    raw_contexts = _raw_column_contexts()
    tables: dict[str, Table] = {}
    for model, names in configuration:
        for name in names:
            try:
                model_field = model._meta.get_field(name)
            except Exception:
                raise ImproperlyConfigured(
                    f"{model._meta.label} has no field {name!r} to rotate. Fix "
                    "_load_model_configurations() or ENCRYPTION_KEY_ROTATION['MODELS']."
                ) from None
            if not isinstance(model_field, models.Field) or model_field.is_relation:
                raise ImproperlyConfigured(
                    f"{model._meta.label}.{name} is not a column that can hold encrypted values."
                )
            owner = model_field.model._meta.concrete_model
            pk_column = owner._meta.pk.column if owner is not None else None
            assert owner is not None and model_field.column is not None and pk_column is not None
            label = owner._meta.label
            table = tables.setdefault(label, Table(label, owner._meta.db_table, pk_column, []))
            entry = (model_field.name, model_field.column)
            if entry not in table.columns:
                table.columns.append(entry)
            reader = reader_for_field(model_field)
            if reader is not None:
                table.legacy[model_field.name] = LegacyColumn(reader, model_field)
            if isinstance(model_field, EncryptedFieldMixin):
                table.encrypted.add(model_field.name)
                binding = model_field.binding
                if (index := indexed_column(model_field)) is not None:
                    table.indexes[model_field.name] = index
            else:
                context = raw_contexts.get(owner, {}).get(model_field.name)
                binding = None if context is None else ColumnBinding(context_bytes(context))
            if binding is not None:
                table.bindings[model_field.name] = binding
    return list(tables.values())


def _raw_column_contexts() -> dict[type[models.Model], dict[str, str]]:
    """``ENCRYPTION_KEY_ROTATION["MODELS"]``'s contexts by concrete model (its labels may be
    spelled in any case)."""
    contexts: dict[type[models.Model], dict[str, str]] = {}
    for label, names in encryption_settings.rotation_contexts.items():
        try:
            model = apps.get_model(label)._meta.concrete_model
        except (LookupError, ValueError):
            raise ImproperlyConfigured(
                f"ENCRYPTION_KEY_ROTATION['MODELS'] names {label!r}, which is not an "
                "installed model. Use 'app_label.ModelName'."
            ) from None
        assert model is not None
        contexts.setdefault(model, {}).update(names)
    return contexts


def table_named(tables: Sequence[Table], label: str) -> Table:
    """The table of model ``label``; a run whose model is no longer configured cannot go on."""
    for table in tables:
        if table.label == label:
            return table
    raise ImproperlyConfigured(
        f"Rotation {label} is no longer among the configured models; configure it again or "
        "finish the rotation with the configuration it started with."
    )
