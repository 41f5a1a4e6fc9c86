"""Check of ``DATA_ENCRYPTION_LEGACY_COLUMNS`` (E033): each entry names a column that can hold
our values (an encrypted field, or a raw column in ``ENCRYPTION_KEY_ROTATION["MODELS"]``) and a
reader that loads with its options. Messages name the entry, never an option's value."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.apps import apps
from django.core.checks import Error, register
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured

from ..conf import encryption_settings
from ..legacy import READERS, SETTING, load_reader

_ID = "data_encryption.E033"


@register()
def check_legacy_columns(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        columns = encryption_settings.legacy_columns
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="Remove the setting when no column is in transition.", id=_ID)]
    errors = []
    for label, spec in columns.items():
        entry = f"{SETTING}[{label!r}]"
        problem = _column_problem(str(label)) or _reader_problem(spec, entry)
        if problem is not None:
            message, hint = problem
            errors.append(Error(f"{entry}: {message}", hint=hint, id=_ID))
    return errors


def _column_problem(label: str) -> tuple[str, str] | None:
    from ..fields import EncryptedFieldMixin

    model_label, _, name = label.rpartition(".")
    try:
        field = apps.get_model(model_label)._meta.get_field(name)
    except (LookupError, ValueError, FieldDoesNotExist):
        return (
            "not a field of an installed model.",
            "Name the column as 'app_label.Model.field'.",
        )
    if isinstance(field, EncryptedFieldMixin) or _is_rotated_raw_column(field):
        return None
    return (
        "the column is neither an encrypted field nor a raw column of "
        "ENCRYPTION_KEY_ROTATION['MODELS'], so nothing would write our values into it.",
        "Change the field to its encrypted counterpart first (docs/adoption.md), or list the "
        "raw column in ENCRYPTION_KEY_ROTATION['MODELS'].",
    )


def _is_rotated_raw_column(field: Any) -> bool:
    owner = field.model._meta.concrete_model
    try:
        configured = encryption_settings.rotation_models
    except ImproperlyConfigured:
        return False  # E014/E017 report it
    for model_label, names in configured.items():
        try:
            model = apps.get_model(model_label)
        except (LookupError, ValueError):
            continue
        if model._meta.concrete_model is owner and field.name in names:
            return True
    return False


def _reader_problem(spec: Any, entry: str) -> tuple[str, str] | None:
    hint = (
        f"Use one of {', '.join(sorted(READERS))} or a dotted path to a LegacyReader, with "
        "the OPTIONS it accepts (the old library's key settings)."
    )
    try:
        load_reader(spec, where=entry)
    except (ImproperlyConfigured, TypeError, ValueError) as exc:
        message = str(exc).removeprefix(f"{entry}: ").removeprefix(f"{entry} ")
        if any(value in message for value in _option_texts(spec)):
            # A custom reader's error repeated an option (a key, perhaps): not shown.
            message = "its reader refused its OPTIONS (its message is not shown: it repeats one)."
        return message, hint
    return None


def _option_texts(spec: Any) -> Iterator[str]:
    options = spec.get("OPTIONS") if isinstance(spec, Mapping) else None
    if not isinstance(options, Mapping):
        return
    for value in options.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
            if len(text) >= 4:
                yield text
