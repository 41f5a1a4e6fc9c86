"""JSON ``null`` in a column that becomes an ``EncryptedJSONField``, which stores Python ``None``
as SQL ``NULL``. The conversion makes each JSON null SQL NULL when the encrypted field is
``null=True``; otherwise each such row fails by pk, saying so. The way back gives JSON null
again to a plain field that is NOT NULL (where SQL NULL cannot go)."""

from __future__ import annotations

from typing import Any

from django.db import models

from ..fields import EncryptedJSONField
from ..legacy import PLAINTEXT, LegacyReader, LegacyValueError

# The text of JSON null, as PostgreSQL's type change renders a json(b) value (UTF-8 bytes in the
# binary column) and as SQLite keeps it (text).
_JSON_NULL = {"postgresql": "convert_to('null', 'UTF8')", "sqlite": "'null'"}
_TEXT_TYPES = (models.JSONField, models.CharField, models.TextField)


def holds_json(field: models.Field) -> bool:
    return isinstance(field, EncryptedJSONField)


def json_nulls_to_sql(schema_editor: Any, model: Any, encrypted: models.Field) -> None:
    """After the type change: every JSON null of ``encrypted``'s column becomes SQL NULL, which
    is how the encrypted field stores ``None`` (it must be ``null=True``)."""
    _update(schema_editor, model, encrypted, "NULL", f"= {_json_null(schema_editor)}")


def sql_nulls_to_json(schema_editor: Any, model: Any, plain: models.Field) -> None:
    """Before the column is plain again: when ``plain`` is NOT NULL, every SQL NULL (which was
    a JSON null before the conversion) becomes JSON null."""
    if plain.null or not isinstance(plain, _TEXT_TYPES):
        return
    _update(schema_editor, model, plain, _json_null(schema_editor), "IS NULL")


def _json_null(schema_editor: Any) -> str:
    return _JSON_NULL[schema_editor.connection.vendor]


def _update(schema_editor: Any, model: Any, field: models.Field, value: str, where: str) -> None:
    quote = schema_editor.quote_name
    column = quote(field.column)
    # Quoted names and fixed literals only; no value enters the statement.
    update = f"UPDATE {quote(model._meta.db_table)} SET {column} = {value}"  # noqa: S608
    schema_editor.execute(f"{update} WHERE {column} {where}")


class NoJsonNull(LegacyReader):
    """The plaintext reader for a column becoming an ``EncryptedJSONField`` that is not
    ``null=True``: a JSON null fails its row with what to do."""

    name = PLAINTEXT

    def __init__(self, reader: LegacyReader) -> None:
        super().__init__()
        self.reader = reader

    def read(self, raw: Any, field: models.Field) -> Any:
        value = self.reader.read(raw, field)
        if value is None:
            label = f"{field.model._meta.label}.{field.name}"
            raise LegacyValueError(
                f"A value of {label} is a JSON null, which EncryptedJSONField stores as SQL "
                "NULL, and the field is not null=True. Make it EncryptedJSONField(null=True), "
                "or replace those JSON nulls (with {} or a value of yours), then migrate again."
            )
        return value
