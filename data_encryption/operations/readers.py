"""The reader an operation reads a column's old values with. The migration names it, never with
options: keys never go in a migration file. The reader reads the old library's settings by
default, or takes its OPTIONS from the column's entry in ``DATA_ENCRYPTION_LEGACY_COLUMNS`` when
that entry names the same reader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..conf.settings import encryption_settings
from ..legacy import READERS, SETTING, LegacyReader, load_reader

ReaderSpec = str | Mapping[str, Any]


def check_reader_spec(spec: Any, where: str) -> None:
    """Refuse, as the operation is constructed, a reader that carries options (they would be
    written into the migration file, and shown by its ``repr``) or that is not a reader's name."""
    if isinstance(spec, Mapping) and set(spec) - {"READER"}:
        raise TypeError(
            f"{where} gives its reader OPTIONS (or keys other than READER): keys never go in a "
            "migration file. The reader reads the old library's settings by default, or takes "
            f"its OPTIONS from the column's {SETTING} entry when that entry names the same "
            "reader; pass the reader's name alone, reader='<name>'."
        )
    name = spec.get("READER") if isinstance(spec, Mapping) else spec
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"{where}: a reader is a name ({', '.join(sorted(READERS))}) or a dotted path to a "
            "LegacyReader subclass."
        )


def reader_name(spec: ReaderSpec) -> str:
    """The name (or dotted path) of the reader ``spec`` gives, as written."""
    return str(spec.get("READER") if isinstance(spec, Mapping) else spec)


def transition_entry(column: str) -> tuple[str, ReaderSpec] | None:
    """The entry of ``DATA_ENCRYPTION_LEGACY_COLUMNS`` for ``column`` (``app_label.Model.field``,
    the model's name in any case), as ``(its key, its reader spec)``."""
    model_label, _, name = column.rpartition(".")
    for key, spec in encryption_settings.legacy_columns.items():
        key_model, _, key_name = str(key).rpartition(".")
        if key_model.lower() == model_label.lower() and key_name == name:
            return str(key), spec
    return None


def same_reader(first: ReaderSpec, second: ReaderSpec) -> bool:
    """Whether two specs name the same reader (by its name or its dotted path)."""
    first_name, second_name = reader_name(first), reader_name(second)
    return READERS.get(first_name, first_name) == READERS.get(second_name, second_name)


def operation_reader(spec: ReaderSpec, column: str, where: str) -> LegacyReader:
    """The reader of ``column``'s old values for an operation whose reader is ``spec``: with
    the OPTIONS of the column's setting entry when it names the same reader."""
    entry = transition_entry(column)
    if entry is not None and same_reader(entry[1], spec):
        return load_reader(entry[1], where=f"{SETTING}[{entry[0]!r}]")
    return load_reader(spec, where=where)


def require_transition(spec: ReaderSpec, column: str, where: str) -> None:
    """Refuse a type change that converts no row unless ``column`` is in transition, read by
    the same reader: otherwise, once deployed, every read of an old value fails."""
    entry = transition_entry(column)
    name = reader_name(spec)
    if entry is None:
        raise ImproperlyConfigured(
            f"{where} converts no row, so the column keeps its old values, which only a column "
            f"in {SETTING} reads. Add {column!r}: {name!r} to {SETTING} (in the settings you "
            "migrate and deploy with), then migrate again; nothing was changed."
        )
    if not same_reader(entry[1], spec):
        raise ImproperlyConfigured(
            f"{where} reads the old values with the {name} reader, but {SETTING}[{entry[0]!r}] "
            f"names the {reader_name(entry[1])} reader. Make them the same reader, then migrate "
            "again; nothing was changed."
        )
