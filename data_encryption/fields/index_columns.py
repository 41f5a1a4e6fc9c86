"""The columns an indexed field keeps beside its ciphertext, and its unique constraints.

``ssn = EncryptedCharField(blind_index=True)`` adds two ``BlindIndexColumn``s, ``ssn_bidx_a``
and ``ssn_bidx_b``, one per index-key slot (docs/search.md: two, so that uniqueness holds in the
database throughout an index-key rotation). They are managed: filled from the field's value on
every write, never edited, never serialised (a fixture's rows are indexed as they load). With
``unique=True`` each slot gets a ``BlindIndexUnique``, a unique constraint that the database
enforces on the slot's column and that ``validate_unique()`` and model forms check on the field,
with Django's own message.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import models
from django.db.models import Q, signals
from django.db.models.constraints import UniqueConstraint

from ..blind_index import DIGEST_BYTES, slot_digest
from ..index_keys import SLOTS, index_key_ring

# The module Django gives the models it renders from migration states.
MIGRATION_MODULE = "__fake__"


def index_column_name(source_name: str, slot: str) -> str:
    return f"{source_name}_bidx_{slot}"


class BlindIndexColumn(models.BinaryField):
    """One slot of a field's blind index: the 16-byte keyed hash of its value (NULL for NULL).
    Indexed, or unique through the field's ``BlindIndexUnique``."""

    description = "Blind index of an encrypted field"

    def __init__(self, *args: Any, source: str, slot: str, **kwargs: Any) -> None:
        self.source, self.slot = source, slot
        kwargs["max_length"] = DIGEST_BYTES
        kwargs["null"] = True
        kwargs["editable"] = False
        kwargs["serialize"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        for fixed in ("max_length", "null", "editable", "serialize"):
            kwargs.pop(fixed, None)
        kwargs["source"], kwargs["slot"] = self.source, self.slot
        return name, "data_encryption.fields.BlindIndexColumn", args, kwargs

    def contribute_to_class(
        self, cls: type[models.Model], name: str, private_only: bool = False
    ) -> None:
        super().contribute_to_class(cls, name, private_only=private_only)
        if cls.__module__ == MIGRATION_MODULE:
            # Listed after its field in a migration: link it to the field (add_index_columns).
            source: Any = next((f for f in cls._meta.local_fields if f.name == self.source), None)
            # Not yet indexed (or not yet encrypted) at this point of the migrations: no link.
            if getattr(source, "blind_index", False):
                linked = {c.slot: c for c in (*source.index_columns, self)}
                source.index_columns = tuple(linked[s] for s in SLOTS if s in linked)

    def source_field(self) -> Any:
        # Looked up once: pre_save asks on every save.
        found = self.__dict__.get("_source_field")
        if found is None or found.model is not self.model:
            found = self.__dict__["_source_field"] = self.model._meta.get_field(self.source)
        return found

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        source = self.source_field()
        if not add and source.attname not in model_instance.__dict__:
            # The value is deferred, so unchanged: keep what the database holds, not the index
            # loaded with the row, which a rebuild or an index-key walk may have filled since.
            return models.F(self.attname)
        data = source.saved_index_input(model_instance)
        value = slot_digest(source.index_context, data, self.slot)
        setattr(model_instance, self.attname, value)
        return value


class BlindIndexUnique(UniqueConstraint):
    """``fields=[<indexed field>]`` for validation (``validate_unique``, model forms, the
    admin), while the database enforces it on the slot's index column: the ciphertext column
    itself cannot be unique (every save encrypts anew). Only the constraint of the slot that
    queries read validates, so a duplicate is reported once."""

    def __init__(self, *, fields: Any, name: str, slot: str, **kwargs: Any) -> None:
        self.slot = slot
        super().__init__(fields=fields, name=name, **kwargs)

    def _on_index_column(self) -> UniqueConstraint:
        column = index_column_name(self.fields[0], self.slot)
        return UniqueConstraint(fields=[column], name=self.name, condition=not_null(column))

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        return self._on_index_column().constraint_sql(model, schema_editor)

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        return self._on_index_column().create_sql(model, schema_editor)

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        return self._on_index_column().remove_sql(model, schema_editor)

    def validate(self, model: Any, instance: Any, exclude: Any = None, using: Any = None) -> None:
        if index_key_ring().active_slot == self.slot:
            super().validate(model, instance, exclude=exclude, using=using)

    def deconstruct(self) -> Any:
        _path, args, kwargs = super().deconstruct()
        kwargs["slot"] = self.slot
        return "data_encryption.fields.BlindIndexUnique", args, kwargs

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BlindIndexUnique)
            and self.slot == other.slot
            and super().__eq__(other)
        )

    __hash__ = UniqueConstraint.__hash__


def not_null(column: str) -> Q:
    """The condition of a slot column's index: its NULLs (the idle slot, a NULL value) are left
    out, so a save that leaves the idle slot NULL changes no entry of its index, and PostgreSQL
    and SQLite still use the index for ``column = %s`` (which implies ``IS NOT NULL``)."""
    return Q(**{f"{column}__isnull": False})


def index_name(model: type[models.Model], column: str) -> str:
    """A slot column's index name: Django allows 30 characters, so a hash of table and column."""
    digest = hashlib.sha256(f"{model._meta.db_table}.{column}".encode()).hexdigest()[:12]
    return f"bidx_{digest}_{column[-1]}"


def constraint_name(model: type[models.Model], source_name: str, slot: str) -> str:
    """``<table>_<field>_bidx_<slot>_uniq``, shortened with a hash past 60 characters (the
    shortest identifier limit of the supported databases is PostgreSQL's 63)."""
    name = f"{model._meta.db_table}_{source_name}_bidx_{slot}_uniq"
    if len(name) <= 60:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:46]}_{digest}_uniq"


def add_index_columns(field: Any, cls: type[models.Model], name: str) -> None:
    """Give ``cls`` the index columns (and unique constraints) of its indexed field ``name``.

    Only a model as declared gets them from its field. A model rendered from migrations
    ("__fake__", also the copy SQLite's schema editor makes to rebuild a table) has exactly the
    columns and constraints its migrations gave it, which the field only links to: adding them
    would make a CreateModel create a constraint before its AddConstraint (PostgreSQL: "already
    exists"), and a table rebuilt between a RemoveField of a column and the AlterField of its
    field, or by a RemoveConstraint, keep what was removed."""
    if cls.__module__ == MIGRATION_MODULE:
        field.index_columns = tuple(
            f
            for f in cls._meta.local_fields
            if isinstance(f, BlindIndexColumn) and f.source == name
        )
        return
    columns = []
    for slot in SLOTS:
        column_name = index_column_name(name, slot)
        column = BlindIndexColumn(source=name, slot=slot)
        # Declared right after the field, in every form and in migrations. Not the field's
        # own counter: fields with equal counters on one model are equal (Field.__eq__).
        column.creation_counter = field.creation_counter + (SLOTS.index(slot) + 1) / 4
        cls.add_to_class(column_name, column)
        columns.append(column)
        if field.index_unique:
            constraint = constraint_name(cls, name, slot)
            if all(c.name != constraint for c in cls._meta.constraints):
                # A new list: Meta.constraints may be shared with an abstract parent's.
                cls._meta.constraints = [
                    *cls._meta.constraints,
                    BlindIndexUnique(fields=[name], name=constraint, slot=slot),
                ]
                # Migrations take a model's constraints from its Meta as written.
                cls._meta.original_attrs["constraints"] = cls._meta.constraints
        else:
            index = index_name(cls, column_name)
            if all(i.name != index for i in cls._meta.indexes):
                cls._meta.indexes = [
                    *cls._meta.indexes,
                    models.Index(fields=[column_name], name=index, condition=not_null(column_name)),
                ]
                cls._meta.original_attrs["indexes"] = cls._meta.indexes
    field.index_columns = tuple(columns)
    signals.pre_save.connect(
        _before_save, sender=cls, weak=False, dispatch_uid="data_encryption.blind_index.raw_save"
    )


def _before_save(
    sender: Any, instance: Any, raw: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    """Before ``save()`` opens its transaction: refuse a value the normaliser rejects (so the
    caller's transaction is not broken by an error in the middle of the save), and for a raw
    save (``loaddata``), which stores attributes without ``pre_save``, compute the index
    columns from the loaded value (they are not serialised)."""
    columns = _index_columns_by_model.get(sender)
    if columns is None:
        columns = _index_columns_by_model[sender] = [
            f for f in sender._meta.concrete_fields if isinstance(f, BlindIndexColumn)
        ]
    for field in columns:
        if raw:
            field.pre_save(instance, add=True)
        elif field.slot == SLOTS[0] and (update_fields is None or field.source in update_fields):
            source = field.source_field()
            if source.attname in instance.__dict__:  # not deferred
                source.saved_index_input(instance)


# Each model's index columns, its own and inherited (the signal runs on every save).
_index_columns_by_model: dict[type[models.Model], list[BlindIndexColumn]] = {}
