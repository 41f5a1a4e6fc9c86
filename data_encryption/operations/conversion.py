"""Converting every row of one column inside a migration, with the rotation's walk: keyset pages
read on the migration's connection, compare-and-swap writes, each value decided alone. A row that
cannot be converted is collected by primary key (never by value); the walk then raises
``ConversionError`` and the migration's transaction leaves every row as it was."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models

from ..encryptor import open_value
from ..exceptions import DataEncryptionError, KeyConfigurationError
from ..fields.binding import ColumnBinding
from ..fields.index_columns import index_column_name
from ..index_keys import SLOTS
from ..keys import key_database, key_ring
from ..legacy import LegacyColumn, LegacyReader, is_envelope
from ..models import DataKey
from ..rotation.batch import examine_rows, failure_reason
from ..rotation.indexes import indexed_column, mark_indexed, refuse_duplicates
from ..rotation.rows import Rewrite, pages, write_rows
from ..rotation.tables import Table
from .raw_columns import is_raw, raw_plaintext

BATCH_SIZE = 1000
# A failure names this many primary keys; the rest are counted.
SHOWN_PKS = 20


class ConversionError(DataEncryptionError, ValueError):
    """Rows of a column that a migration could not convert. Its text names the rows by primary
    key and says what to do; it never quotes a value."""


def require_key_table(operation: str) -> None:
    """Refuse before any change when ``data_encryption``'s own tables are not migrated yet on
    the keys' database (the migration does not depend on them)."""
    connection = connections[key_database()]
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        columns = set()
        if DataKey._meta.db_table in tables:
            description = connection.introspection.get_table_description(
                cursor, DataKey._meta.db_table
            )
            columns = {column.name for column in description}
    wanted = {model_field.column for model_field in DataKey._meta.concrete_fields}
    if not wanted <= columns:
        raise KeyConfigurationError(
            f"{operation} needs data_encryption's key table, which is not migrated yet on "
            f"database {connection.alias!r}. Add {latest_key_migration()!r} to this "
            "migration's dependencies, so the key table exists before it runs."
        )


def latest_key_migration() -> tuple[str, str]:
    """The migration of ``data_encryption`` that a migration using its keys depends on."""
    from django.db.migrations.loader import MigrationLoader

    leaves = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes("data_encryption")
    return leaves[-1]


def seal_column(
    connection: Any,
    model: type[models.Model],
    encrypted: Any,
    reader: Any,
    binding: ColumnBinding | None,
) -> None:
    """Encrypt every value of ``encrypted``'s column that is not an envelope yet, read by
    ``reader`` (its old value's text, or bytes) under the current primary data key, bound to
    ``binding`` (``None``: unbound). A field with a blind index whose index columns exist gets
    its index in the same write, and is then recorded as indexed."""
    ring = key_ring()
    if ring.refusal:
        raise KeyConfigurationError(ring.refusal)
    table = _table(model, encrypted, binding)
    table.legacy[encrypted.name] = LegacyColumn(reader, encrypted)
    table.encrypted.add(encrypted.name)
    index = indexed_column(encrypted, table_columns(connection, table.table))
    if index is not None:
        table.indexes[encrypted.name] = index
    failures: list[tuple[Any, str]] = []
    for rows in pages(connection, table, BATCH_SIZE):
        batch = examine_rows(
            rows,
            table.columns,
            ring.primary_id,
            ring.ciphers[ring.primary_id],
            rewrite=True,
            bindings=table.bindings,
            legacy=table.legacy,
            encrypted=table.encrypted,
            only_legacy=True,
            indexes=table.indexes,
        )
        refuse_duplicates(connection, table, batch)
        write_rows(connection, table, batch)
        failures += [(pk, reason) for pk, _name, _key, reason in batch.failures]
    _raise_for(failures, "encrypt", table.label, encrypted.name)
    mark_indexed(connection, table, [encrypted.name])


def table_columns(connection: Any, table: str) -> set[str]:
    """The names of ``table``'s columns as the database has them now."""
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, table)
    return {column.name for column in description}


def require_index_columns(connection: Any, encrypted: Any, where: str) -> None:
    """Refuse, before any change, to convert an indexed field's rows before its index columns
    exist: they would be left without an index, which queries refuse to answer from."""
    if not getattr(encrypted, "blind_index", False):
        return
    # By name: the field of a model rendered from migrations links only the columns they made.
    wanted = [index_column_name(encrypted.name, slot) for slot in SLOTS]
    missing = [
        name
        for name in wanted
        if name not in table_columns(connection, encrypted.model._meta.db_table)
    ]
    if missing:
        raise ConversionError(
            f"{where} fills the blind index of {encrypted.name} as it converts the rows, but "
            f"its index columns {', '.join(missing)} do not exist yet. Put the AddField "
            f"operations of {', '.join(wanted)} before it in the migration (makemigrations_"
            "encrypted writes them so), then migrate again."
        )


def open_column(
    connection: Any,
    model: type[models.Model],
    encrypted: Any,
    reader: LegacyReader | None,
    binding: ColumnBinding | None,
    stored: Callable[[Any], Any],
) -> None:
    """Replace every value of ``encrypted``'s column by ``stored(value)``: an envelope is
    decrypted, a value from before the column was ours (a conversion left unfinished) is read
    by ``reader``. A raw column's value is its plaintext bytes. Every value is read before any
    is written."""
    table = _table(model, encrypted, binding)
    raw_column = is_raw(encrypted)
    rewrites: list[Rewrite] = []
    failures: list[tuple[Any, str]] = []
    for rows in pages(connection, table, BATCH_SIZE):
        for pk, raw in rows:
            if raw is None:
                continue
            if isinstance(raw, memoryview):
                raw = bytes(raw)
            try:
                if is_envelope(raw) or reader is None:
                    context = None if binding is None else binding.for_row(pk)
                    value = open_value(raw, context)
                    if not raw_column:
                        value = encrypted.from_plaintext_checked(value)
                else:
                    value = reader.read(raw, encrypted)
                    if raw_column:
                        value = raw_plaintext(value)
                rewrites.append((stored(value), pk, raw))
            except Exception as exc:  # any value's failure is that row's; never the value
                failures.append((pk, failure_reason(exc)))
    _raise_for(failures, "decrypt", table.label, encrypted.name)
    for start in range(0, len(rewrites), BATCH_SIZE):
        writes = _Writes({encrypted.column: rewrites[start : start + BATCH_SIZE]})
        write_rows(connection, table, writes)
        failures += writes.refused
    _raise_for(failures, "decrypt", table.label, encrypted.name)


@dataclass
class _Writes:
    """What ``write_rows`` writes for ``open_column``, and the rows the database refused."""

    updates: dict[str, list[Rewrite]]
    refused: list[tuple[Any, str]] = field(default_factory=list)

    def write_failed(self, pk: Any, column: str, reason: str) -> None:
        self.updates = {
            name: [rewrite for rewrite in rewrites if rewrite[1] != pk]
            for name, rewrites in self.updates.items()
        }
        self.refused.append((pk, reason))


def _table(model: type[models.Model], encrypted: Any, binding: ColumnBinding | None) -> Table:
    bindings: Mapping[str, Any] = {}
    if binding is not None:
        bindings = {encrypted.name: binding}
    pk_column = model._meta.pk.column
    assert pk_column is not None  # a model's primary key always has a column
    return Table(
        model._meta.label,
        model._meta.db_table,
        pk_column,
        [(encrypted.name, encrypted.column)],
        dict(bindings),
    )


def _raise_for(failures: Sequence[tuple[Any, str]], verb: str, label: str, name: str) -> None:
    if not failures:
        return
    pks = sorted({pk for pk, _ in failures}, key=str)
    shown = ", ".join(str(pk) for pk in pks[:SHOWN_PKS])
    more = f" and {len(pks) - SHOWN_PKS} more" if len(pks) > SHOWN_PKS else ""
    reasons = "; ".join(sorted({reason.rstrip(".") for _, reason in failures})[:3])
    advice = _ADVICE[verb]
    raise ConversionError(
        f"Could not {verb} {len(pks)} row(s) of {label}.{name} (pk {shown}{more}): {reasons}. "
        f"The migration was rolled back, so every row is as it was. {advice}"
    )


_ADVICE = {
    "encrypt": (
        "Fix those rows and migrate again, or convert online: EncryptField(..., convert=False), "
        "the column in DATA_ENCRYPTION_LEGACY_COLUMNS, then 'manage.py encrypt_existing', which "
        "reports such rows and leaves them (docs/adoption.md)."
    ),
    "decrypt": (
        "Fix or delete those rows (a value under a missing data key needs that key back: "
        "'manage.py restore_encryption_keys <backup>'), then migrate again."
    ),
}
