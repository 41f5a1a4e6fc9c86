"""The blind index a conversion fills: when a legacy value of an indexed field is sealed, its
index columns (one per slot) are computed from the plaintext the walk already has and written
in the same compare-and-swap ``UPDATE`` as the ciphertext, so a converted row is never found
encrypted but unindexed. A unique index is checked before the write, so a row whose value is
another row's once normalised is reported by pk and left as it was, saying what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from ..blind_index import write_digests
from ..exceptions import BlindIndexError
from ..index_keys import SLOTS, index_key_ring, mark_complete


class IndexInputError(BlindIndexError):
    """A legacy value that its field's normaliser refuses, so it cannot be indexed."""


@dataclass(frozen=True)
class IndexedColumn:
    """An indexed field's index columns (in ``SLOTS`` order) and how its values are hashed."""

    field: Any
    columns: tuple[str, ...]

    @property
    def unique(self) -> bool:
        return bool(self.field.index_unique)

    @property
    def label(self) -> str:
        return f"{self.field.model._meta.label}.{self.field.name}"

    def digests(self, plaintext: bytes) -> tuple[bytes | None, ...]:
        """The value of each index column for a value sealed as ``plaintext``: its index
        input (normalised text, or canonical plaintext) hashed under each slot's live key."""
        try:
            data = self.field.index_input(self.field.from_plaintext(plaintext))
        except ValidationError:
            raise IndexInputError(
                f"The {self.field.normaliser!r} normaliser of {self.label} refuses this value, "
                "so it cannot be indexed: correct the row's value, then convert again."
            ) from None
        return write_digests(self.field.index_context, data)


def indexed_column(field: models.Field, existing: Iterable[str] | None = None) -> Any:
    """``field``'s ``IndexedColumn`` when it has a blind index (and, given the table's
    ``existing`` column names, when its index columns are among them), else ``None``."""
    if not getattr(field, "blind_index", False):
        return None
    columns = tuple(column.column for column in field.index_columns)  # type: ignore[attr-defined]
    if existing is not None and not set(columns) <= set(existing):
        return None
    return IndexedColumn(field, columns)


def refuse_duplicates(connection: Any, table: Any, batch: Any) -> None:
    """Drop, as failures by pk, the rewrites of a unique indexed column whose index equals
    another row's (already in the table, or earlier in the batch): the database (or, inside a
    migration, the constraint added after the conversion) would refuse them anyway, and this
    way each says why and what to do."""
    for column, rewrites in list(batch.updates.items()):
        index = table.indexes.get(batch.fields.get(column, column))
        indexed = [rewrite for rewrite in rewrites if len(rewrite) > 3]
        if index is None or not index.unique or not indexed:
            continue
        taken = _indexed_elsewhere(connection, table, index, indexed)
        for rewrite in sorted(indexed, key=lambda rewrite: _order(rewrite[1])):
            pk, digests = rewrite[1], rewrite[3:]
            keys = [(slot, digest) for slot, digest in enumerate(digests) if digest is not None]
            other = next((taken[key] for key in keys if taken.get(key, pk) != pk), None)
            if other is None:
                taken.update(dict.fromkeys(keys, pk))
                continue
            batch.write_failed(pk, column, _duplicate_reason(index, other))


def _indexed_elsewhere(
    connection: Any, table: Any, index: IndexedColumn, rewrites: Sequence[Any]
) -> dict[tuple[int, bytes], Any]:
    """``{(slot position, digest): pk}`` of the rows already holding one of ``rewrites``'
    digests in a slot."""
    quote = connection.ops.quote_name
    taken: dict[tuple[int, bytes], Any] = {}
    for position, column in enumerate(index.columns):
        wanted = sorted({r[3 + position] for r in rewrites if r[3 + position] is not None})
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = (
                f"SELECT {quote(table.pk_column)}, {quote(column)} "  # noqa: S608
                f"FROM {quote(table.table)} WHERE {quote(column)} IN "
                f"({', '.join(['%s'] * len(part))})"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, part)
                for pk, digest in cursor.fetchall():
                    taken[position, bytes(digest)] = pk
    return taken


def _order(pk: Any) -> tuple[int, Any]:
    return (0, pk) if isinstance(pk, int) else (1, str(pk))


def _duplicate_reason(index: IndexedColumn, other: Any) -> str:
    normaliser = index.field.normaliser
    normalised = f" once normalised ({normaliser!r})" if normaliser else ""
    return (
        f"its value is the value of row pk={other}{normalised}, and {index.label} is unique "
        "(blind_index=True, unique=True): make the two rows' values differ (or delete one), "
        "then convert again; the row was left as it was"
    )


def mark_indexed(connection: Any, table: Any, names: Iterable[str]) -> list[str]:
    """Record as complete, under the active index key, each indexed field among ``names``
    of ``table`` whose every non-NULL value has an index in the active slot (what a query
    needs before it answers). Returns the fields so marked, as ``app_label.Model.field``."""
    indexes = [table.indexes[name] for name in names if name in table.indexes]
    if not indexes:
        return []  # no index key is needed (nor made, on a fresh install)
    ring = index_key_ring()
    position = SLOTS.index(ring.active_slot)
    quote = connection.ops.quote_name
    marked = []
    for index in indexes:
        column = quote(index.field.column)
        sql = (
            f"SELECT 1 FROM {quote(table.table)} WHERE {column} IS NOT NULL "  # noqa: S608
            f"AND {quote(index.columns[position])} IS NULL LIMIT 1"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql)
            if cursor.fetchone() is not None:
                continue
        mark_complete(ring.active.key_id, index.field.index_record)
        marked.append(index.label)
    return marked
