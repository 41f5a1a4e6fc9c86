"""The lookups an indexed field answers from its blind index: ``exact`` (``filter(ssn=...)``,
``get``, ``exclude``, ``Q``), ``in``, and ``iexact`` when its normaliser folds case (what the
admin's ``search_fields = ["=ssn"]`` asks).

Each compares the index column that queries read (the active index key's slot) with the keyed
hash of the normalised value; the value itself never reaches the database. A value the
normaliser refuses matches no row (the admin searches every field with the same term). Before
its first answer under a key, a field checks that every row has an index under it, and refuses
with what to run if not, rather than silently missing rows.
"""

from __future__ import annotations

from typing import Any

from django.core import exceptions
from django.db.models import lookups
from django.db.models.expressions import Col

from ..blind_index import read_digest
from ..conf import register_cache
from ..exceptions import BlindIndexIncomplete
from ..index_keys import SLOTS, index_key_ring, mark_complete


class _BlindLookup(lookups.Lookup):
    """The part common to the index lookups: which column to read, which hashes to compare."""

    def _index_column_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        field = self.lhs.output_field
        if not isinstance(self.lhs, Col):
            raise exceptions.FieldError(
                f"{field.model.__name__}.{field.name}: a blind index answers lookups on the "
                "field itself only."
            )
        ring = index_key_ring()
        require_complete(field, ring.active.key_id, ring.active.complete, connection.alias)
        column = field.index_columns[SLOTS.index(ring.active_slot)]
        return compiler.compile(Col(self.lhs.alias, column))

    def _digest(self, value: Any) -> bytes | None:
        """The hash a query compares, ``None`` when the normaliser refuses the value."""
        if hasattr(value, "resolve_expression"):
            field = self.lhs.output_field
            raise exceptions.FieldError(
                f"{field.model.__name__}.{field.name} is encrypted and indexed: compare it with "
                "Python values, not an expression or a subquery (the database holds only "
                "hashes of the values)."
            )
        field = self.lhs.output_field
        data = field.index_input(value, query=True)
        return None if data is None else read_digest(field.index_context, data)


class BlindExact(_BlindLookup, lookups.Exact):
    def as_sql(self, compiler: Any, connection: Any) -> Any:
        digest = self._digest(self.rhs)
        if digest is None:
            raise exceptions.EmptyResultSet
        column_sql, params = self._index_column_sql(compiler, connection)
        return f"{column_sql} = %s", [*params, digest]


class BlindIExact(BlindExact):
    """``iexact`` on a field whose normaliser folds case: its index already ignores case."""

    lookup_name = "iexact"


class BlindIn(_BlindLookup, lookups.In):
    def get_prep_lookup(self) -> Any:
        if hasattr(self.rhs, "resolve_expression"):
            self._digest(self.rhs)  # refuses it, saying why
        return super().get_prep_lookup()

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        digests = {self._digest(value) for value in self.rhs if value is not None}
        digests.discard(None)
        if not digests:
            raise exceptions.EmptyResultSet
        column_sql, params = self._index_column_sql(compiler, connection)
        placeholders = ", ".join(["%s"] * len(digests))
        return f"{column_sql} IN ({placeholders})", [*params, *sorted(digests)]  # type: ignore[type-var]


# Fields checked complete by this process, by (index key id, context): one query per field
# per key, not per lookup.
_checked: set[tuple[int, str]] = set()
register_cache(_checked.clear)


def require_complete(field: Any, key_id: int, complete: frozenset[str], using: str) -> None:
    """Refuse to answer from an index that some rows lack (values written before
    ``blind_index=True`` was added, converted from plaintext, or restored from elsewhere)."""
    context = field.index_record
    if context in complete or (key_id, context) in _checked:
        return
    column = field.index_columns[SLOTS.index(index_key_ring().active_slot)]
    missing = (
        field.model._base_manager.using(using)
        .filter(**{f"{field.name}__isnull": False, f"{column.name}__isnull": True})
        .count()
    )
    label = f"{field.model._meta.label}.{field.name}"
    if missing:
        raise BlindIndexIncomplete(
            f"{field.model.__name__}.{field.name} has {missing} row(s) without a blind index "
            "under the active index key, so a query would miss them. Build it with "
            f"'manage.py rebuild_blind_index {label}' (docs/search.md)."
        )
    if not _sampled_rows_match(field, column, using):
        raise BlindIndexIncomplete(
            f"{field.model.__name__}.{field.name} holds blind index values that the active "
            "index key and the field's normaliser did not write (the index keys were lost or "
            "restored from an older backup, or the normaliser changed), so a query would miss "
            "rows. Recompute every row's index with "
            f"'manage.py rebuild_blind_index --recompute {label}', or restore the index keys "
            "from a key backup (docs/search.md)."
        )
    mark_complete(key_id, context)
    _checked.add((key_id, context))


def _sampled_rows_match(field: Any, column: Any, using: str) -> bool:
    """Whether the oldest and newest indexed rows hold their hash under the active key. An
    index written under a key this process no longer has (the index-key table lost, or
    restored from a backup older than the last rotation) has no NULLs to count: every row
    would be silently missed. Two rows read once per field per key, not per query."""
    indexed = (
        field.model._base_manager.using(using)
        .filter(**{f"{field.name}__isnull": False, f"{column.name}__isnull": False})
        .only(field.attname, column.attname)
    )
    for row in (indexed.order_by("pk").first(), indexed.order_by("-pk").first()):
        if row is None:
            continue
        data = field.index_input(getattr(row, field.attname), query=True)
        if data is not None and read_digest(field.index_context, data) != bytes(
            getattr(row, column.attname)
        ):
            return False
    return True
