"""A column's type change between a plain field and its encrypted counterpart, values kept.

PostgreSQL cannot cast most types to ``bytea`` (and casting text to ``bytea`` reads backslashes
as escapes), so each value is rendered as the text the encrypted field's ``from_plaintext``
parses, and parsed back going the other way. SQLite keeps each value as it was stored across
the schema editor's table rebuild (it is dynamically typed), so nothing is rendered there.
"""

from __future__ import annotations

from typing import Any

from django.db import models

# Both databases run DDL inside the migration's transaction, so a failed conversion rolls the
# type change back with the rows. MySQL does not (its DDL commits), so it is refused.
SUPPORTED_VENDORS = ("postgresql", "sqlite")

_MICROSECONDS_PER_DAY = 86_400_000_000
_UTC_ISO = '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''


class BareColumn(models.Field):
    """A column of a given type with nothing else (no index, uniqueness or CHECK): the step
    between a plain field and an encrypted one, so Django's schema editor drops those before the
    type changes, and restores them after, as ``AlterField`` would."""

    def __init__(self, column_type: str, *, like: models.Field, null: bool) -> None:
        self.column_type = column_type
        super().__init__(null=null, db_column=like.column)
        self.set_attributes_from_name(like.name)
        self.model = like.model

    def db_type(self, connection: Any) -> str:
        return self.column_type


def check_vendor(connection: Any, operation: str) -> None:
    if connection.vendor not in SUPPORTED_VENDORS:
        raise NotImplementedError(
            f"{operation} runs on PostgreSQL and SQLite, whose DDL is transactional, so a row "
            f"that cannot be converted rolls everything back; {connection.display_name} commits "
            "each DDL statement. Convert online instead (docs/adoption.md)."
        )


def to_encrypted(schema_editor: Any, model: Any, plain: models.Field, encrypted: Any) -> None:
    """Change ``plain``'s column into ``encrypted``'s (binary), each value kept as the text its
    new field parses (PostgreSQL) or as it was stored (SQLite); then as ``AlterField`` would."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        schema_editor.alter_field(model, plain, encrypted)
        return
    plain_type = column_type(plain, connection)
    bare_plain = BareColumn(plain_type, like=plain, null=plain.null)
    schema_editor.alter_field(model, plain, bare_plain)
    binary_type = column_type(encrypted, connection)
    _alter_type(schema_editor, model, plain, binary_type, _plaintext_of(plain_type))
    bare_binary = BareColumn(binary_type, like=encrypted, null=plain.null)
    schema_editor.alter_field(model, bare_binary, encrypted)


def to_plain(schema_editor: Any, model: Any, encrypted: Any, plain: models.Field) -> None:
    """Change ``encrypted``'s column, whose values are each its plain value's plaintext bytes
    by now (PostgreSQL) or its plain value as stored (SQLite), back into ``plain``'s."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        schema_editor.alter_field(model, encrypted, plain)
        return
    binary_type = column_type(encrypted, connection)
    bare_binary = BareColumn(binary_type, like=encrypted, null=encrypted.null)
    schema_editor.alter_field(model, encrypted, bare_binary)
    # The rows were just updated: fire any deferred trigger now, or ALTER TABLE refuses to run
    # with "pending trigger events".
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    plain_type = column_type(plain, connection)
    _alter_type(schema_editor, model, plain, plain_type, _parse_of(plain_type))
    bare_plain = BareColumn(plain_type, like=plain, null=encrypted.null)
    schema_editor.alter_field(model, bare_plain, plain)


def column_type(field: models.Field, connection: Any) -> str:
    found = field.db_type(connection)
    if found is None:
        raise TypeError(f"{field.name} has no column of its own, so it cannot be converted.")
    return found


def _alter_type(
    schema_editor: Any, model: Any, field: models.Field, new_type: str, using: str
) -> None:
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"ALTER TABLE {quote(model._meta.db_table)} ALTER COLUMN {quote(field.column)} "
        f"TYPE {new_type} USING {using.format(column=quote(field.column))}"
    )


def _plaintext_of(plain_type: str) -> str:
    """PostgreSQL: the ``bytea`` an encrypted field's ``from_plaintext`` parses, for a value of
    a plain column of type ``plain_type`` (``{column}`` stands for the quoted column)."""
    kind = plain_type.lower()
    if kind == "bytea":
        return "{column}"
    if kind == "boolean":
        text = "CASE WHEN {column} THEN '1' WHEN NOT {column} THEN '0' END"  # NULL stays NULL
    elif kind == "date":
        text = "to_char({column}, 'YYYY-MM-DD')"
    elif kind.startswith("timestamp"):
        # In UTC with its offset: right for USE_TZ and, converted to TIME_ZONE, without it.
        text = f"to_char({{column}} AT TIME ZONE 'UTC', {_UTC_ISO})"
    elif kind == "interval":
        # Exact: EXTRACT gives numeric on PostgreSQL 14+, the oldest that Django 5.2 supports;
        # no bigint, whose range ends at about 106,751 days (timedelta.max has 999,999,999).
        text = "trunc(EXTRACT(EPOCH FROM {column}) * 1000000)::text"
    elif kind == "inet":
        text = "host({column})"
    elif kind.startswith(("varchar", "text", "char", "citext")):
        text = "{column}"
    else:  # numbers, uuid, time, json(b), a peer library's text: their own text form
        text = "{column}::text"
    return f"convert_to({text}, 'UTF8')"


def _parse_of(plain_type: str) -> str:
    """PostgreSQL: the value of a plain column of type ``plain_type`` from the ``bytea`` of its
    plaintext (``{column}`` stands for the quoted column)."""
    kind = plain_type.lower()
    if kind == "bytea":
        return "{column}"
    text = "convert_from({column}, 'UTF8')"
    if kind == "interval":
        # Integer microseconds, exact whatever the size: as days and the rest, since an
        # interval holds its days apart from its (bigint) microseconds.
        micros, day = f"{text}::numeric", _MICROSECONDS_PER_DAY
        days, rest = f"div({micros}, {day})", f"mod({micros}, {day})"
        return f"({days} || ' days ' || {rest} || ' microseconds')::interval"
    return f"CAST({text} AS {plain_type})"  # booleans too: '1' and '0' are boolean literals


def raw_values_as_bytes(schema_editor: Any, model: Any, field: models.Field) -> None:
    """SQLite: a raw column's values, which its table rebuild kept as the plain column stored
    them (text, numbers), as their UTF-8 text's bytes, which is what PostgreSQL's type change
    makes of them too: the property pattern's column then holds bytes, whatever the database."""
    if schema_editor.connection.vendor != "sqlite":
        return
    quote = schema_editor.quote_name
    column, table = quote(field.column), quote(model._meta.db_table)
    # Quoted names only; no value enters the statement.
    update = f"UPDATE {table} SET {column} = CAST({column} AS BLOB)"  # noqa: S608
    schema_editor.execute(f"{update} WHERE typeof({column}) IN ('text', 'integer', 'real')")
