"""Keeping an indexed field's index columns in step with every write.

``save()``, ``create()`` and ``bulk_create()`` insert every column, so the index columns' own
``pre_save`` fills them. The paths that name only the field (``update(ssn=...)``,
``bulk_update(objs, ["ssn"])``, ``save(update_fields=["ssn"])``) never ask the index columns,
so the field writes them itself: its ``get_db_prep_save`` returns an ``IndexedAssignment``,
whose SQL in an UPDATE is ``<ciphertext>, "ssn_bidx_a" = <hash>, "ssn_bidx_b" = <hash>``. This
leans on the UPDATE compiler's ``"<column> = <compiled value>"`` joined by commas, the same in
Django 5.2 and 6.x (``test_blind_index_writes`` pins it on each).
"""

from __future__ import annotations

from typing import Any

from django.core import exceptions
from django.db import models
from django.db.models.expressions import Case, Col, Value, When
from django.db.models.functions import Cast
from django.db.models.sql.compiler import SQLUpdateCompiler

from ..blind_index import slot_digest
from .binding import RowBoundValue


class ForInsert:
    """The value an indexed field's ``pre_save`` hands an INSERT: the index columns were
    filled by their own ``pre_save``, so the value is written plainly (which keeps
    PostgreSQL's ``UNNEST`` bulk insert, refused to expressions).

    The INSERT compiler hands it its query (``resolve_expression``) before compiling: an
    upsert (``bulk_create(update_conflicts=True, update_fields=["ssn"])``) that updates the
    field on a conflict then updates its index columns too, from the inserted row's."""

    __slots__ = ("indexed_field", "value")

    # What the INSERT compiler asks of a resolved expression: this writes a plain value.
    contains_column_references = contains_aggregate = contains_over_clause = False

    def __init__(self, value: Any, indexed_field: Any) -> None:
        self.value, self.indexed_field = value, indexed_field

    def __repr__(self) -> str:
        return "<ForInsert>"  # never the value: it is plaintext

    def resolve_expression(self, query: Any = None, *args: Any, **kwargs: Any) -> ForInsert:
        updated = getattr(query, "update_fields", None) or ()
        if self.indexed_field in updated:
            missing = [c for c in self.indexed_field.index_columns if c not in updated]
            if missing:
                query.update_fields = [*updated, *missing]
        return self


class IndexedAssignment(models.Expression):
    """The ciphertext of ``value`` and, in an UPDATE that does not already set them, the
    assignments of the field's index columns."""

    def __init__(self, field: Any, value: Any) -> None:
        super().__init__(output_field=field)
        self.indexed_field, self.value = field, value

    def __repr__(self) -> str:
        return f"<IndexedAssignment {self.indexed_field.name}>"

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        sql, params = self._ciphertext(compiler, connection)
        if not isinstance(compiler, SQLUpdateCompiler):
            return sql, params
        already_set = {field for field, _model, _value in compiler.query.values}  # type: ignore[attr-defined]
        for column in self.indexed_field.index_columns:
            if column in already_set:
                continue
            index_sql, index_params = self._index(column, compiler, connection)
            if index_sql is None:
                continue
            sql = f"{sql}, {connection.ops.quote_name(column.column)} = {index_sql}"
            params = [*params, *index_params]
        return sql, params

    def _ciphertext(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        value = self.value
        if hasattr(value, "as_sql"):
            return compiler.compile(_for_sql(value))
        prepared = self.indexed_field.plain_db_prep_save(value, connection)
        return ("NULL", []) if prepared is None else ("%s", [prepared])

    def _index(self, column: Any, compiler: Any, connection: Any) -> tuple[str | None, list[Any]]:
        value = self.value
        if isinstance(value, Cast):  # PostgreSQL's bulk_update: Cast(Case(...))
            value = value.source_expressions[0]
        if isinstance(value, Case):  # bulk_update: the same WHENs, indexed THENs
            whens = [
                When(when.condition, then=self._index_value(column, when.result, connection))
                for when in value.cases
            ]
            default = Col(compiler.query.base_table, column)
            case = Case(*whens, default=default, output_field=column)
            if connection.features.requires_casted_case_in_updates:
                return compiler.compile(Cast(case, output_field=column))
            return compiler.compile(case)
        if isinstance(value, Col) and value.target is self.indexed_field:
            return None, []  # ssn = F("ssn"): the index stays as it is
        digest = self._index_value(column, value, connection)
        return compiler.compile(digest)

    def _index_value(self, column: Any, value: Any, connection: Any) -> Value:
        if isinstance(value, (Value, RowBoundValue)):
            value = value.value
        elif hasattr(value, "as_sql"):
            field = self.indexed_field
            raise exceptions.FieldError(
                f"{field.model.__name__}.{field.name} has a blind index, so it can "
                "only be set to a Python value (or NULL): the index of the result of an "
                "expression cannot be computed. Load the rows and assign the values."
            )
        data = self.indexed_field.index_input(value)
        digest = slot_digest(self.indexed_field.index_context, data, column.slot)
        return Value(digest, output_field=column)


def _for_sql(expression: Any) -> Any:
    """A copy of a resolved expression whose ``Value``s no longer call the field's
    ``get_db_prep_save`` (which would hand back another ``IndexedAssignment``) but
    ``get_db_prep_value``, which encrypts."""
    if isinstance(expression, Value):
        copy = expression.copy()
        copy.for_save = False
        return copy
    if not hasattr(expression, "get_source_expressions"):
        return expression
    copy = expression.copy()
    copy.set_source_expressions(
        [None if part is None else _for_sql(part) for part in copy.get_source_expressions()]
    )
    return copy
