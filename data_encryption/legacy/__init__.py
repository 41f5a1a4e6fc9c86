"""Columns in transition: values from before a column was ours, and the readers that read them.

``DATA_ENCRYPTION_LEGACY_COLUMNS`` names each column whose old values are still being converted
and what reads them::

    DATA_ENCRYPTION_LEGACY_COLUMNS = {
        "customers.Customer.ssn": "plaintext",
        "customers.Customer.notes": {
            "READER": "django-encrypted-model-fields",
            "OPTIONS": {"FIELD_ENCRYPTION_KEY": os.environ["OLD_FIELD_ENCRYPTION_KEY"]},
        },
    }

Only those columns read such values (never a global plaintext passthrough); every write is an
envelope. The transition ends when the census finds none left and the entry is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from ..conf import load_class, register_cache
from ..conf.settings import encryption_settings
from .base import (
    PLAINTEXT,
    LegacyColumn,
    LegacyReader,
    LegacyValueError,
    UndecodableText,
    is_envelope,
    is_fernet_token,
    plaintext_from_legacy,
    reader_options,
)

SETTING = "DATA_ENCRYPTION_LEGACY_COLUMNS"

#: The readers that ship, by the name a setting may use instead of a dotted path.
READERS = {
    PLAINTEXT: "data_encryption.legacy.plaintext.PlaintextReader",
    "django-fernet-encrypted-fields": "data_encryption.legacy.fernet_fields.FernetFieldsReader",
    "django-cryptography": "data_encryption.legacy.django_cryptography.DjangoCryptographyReader",
    "django-encrypted-model-fields": (
        "data_encryption.legacy.encrypted_model_fields.EncryptedModelFieldsReader"
    ),
}

__all__ = [
    "PLAINTEXT",
    "READERS",
    "SETTING",
    "LegacyColumn",
    "LegacyReader",
    "LegacyValueError",
    "UndecodableText",
    "field_named",
    "is_envelope",
    "is_fernet_token",
    "legacy_readers",
    "load_reader",
    "plaintext_from_legacy",
    "reader_for_field",
]


def load_reader(spec: str | Mapping[str, Any], *, where: str = SETTING) -> LegacyReader:
    """A reader from its spec: a name in ``READERS`` or a dotted path, alone or as
    ``{"READER": ..., "OPTIONS": {...}}``. ``where`` names the setting or operation in errors."""
    if isinstance(spec, str):
        path, options = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("READER"), str):
        path, options = spec["READER"], reader_options(spec)
    else:
        raise ImproperlyConfigured(
            f"{where}: a reader is a name ({', '.join(sorted(READERS))}), a dotted path to a "
            'LegacyReader subclass, or {"READER": <one of those>, "OPTIONS": {...}}.'
        )
    reader_class = load_class(where, READERS.get(path, path), LegacyReader)  # type: ignore[type-abstract]
    return reader_class(**options)


_readers: dict[tuple[str, str], LegacyReader] | None = None


@register_cache
def _forget_readers() -> None:
    global _readers
    _readers = None


def legacy_readers() -> dict[tuple[str, str], LegacyReader]:
    """Every column in transition, ``(model label_lower, field name) -> reader``: the setting
    resolved once (and again whenever a setting changes)."""
    global _readers
    if _readers is None:
        _readers = _resolve(encryption_settings.legacy_columns)
    return _readers


def reader_for_field(field: models.Field) -> LegacyReader | None:
    """The legacy reader of ``field``'s column, or ``None`` when the column is not in
    transition (its every value must then be an envelope)."""
    model = getattr(field, "model", None)
    if model is None or not legacy_readers():
        return None
    concrete = model._meta.concrete_model or model
    return legacy_readers().get((concrete._meta.label_lower, field.name))


def field_named(column: str, *, where: str) -> models.Field:
    """The field ``"app_label.Model.field"`` names; ``where`` (a setting, a function) is who
    named it, for the error when it names none."""
    model_label, _, name = str(column).rpartition(".")
    try:
        field = apps.get_model(model_label)._meta.get_field(name)
    except (LookupError, ValueError, FieldDoesNotExist):
        raise ImproperlyConfigured(
            f"{where} names {column!r}, which is not a field of an installed model. Use "
            "'app_label.Model.field', e.g. 'customers.Customer.ssn'."
        ) from None
    assert isinstance(field, models.Field)
    return field


def _resolve(columns: Mapping[str, Any]) -> dict[tuple[str, str], LegacyReader]:
    resolved = {}
    for label, spec in columns.items():
        field = field_named(label, where=SETTING)
        concrete = field.model._meta.concrete_model or field.model
        resolved[(concrete._meta.label_lower, field.name)] = load_reader(
            spec, where=f"{SETTING}[{label!r}]"
        )
    return resolved
