"""The rotation's SQL: read a table by primary key, split it into ranges, write rewrites back.

Every identifier comes from model metadata and goes through the backend's quoting; values always
travel as parameters (hence the S608 waivers below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from django.db import DatabaseError, OperationalError, transaction

from ..exceptions import describe_error
from ..legacy import UndecodableText
from .tables import Table

# (new value, pk, old value), then, for a value of an indexed field that gets its blind index
# with it (a conversion), the value of each of its index columns (``Table.indexes``).
Rewrite = tuple[Any, ...]
# What a batch's updates are keyed by: the column rewritten and compared (a re-encryption), or
# (column set, column compared) (an index walk sets an index column where its ciphertext is
# still the one read).
Target = str | tuple[str, str]


class Rewrites(Protocol):
    """What ``write_rows`` writes: per column, the ``(new, pk, old)`` of each changed value
    (a ``Batch``, or anything with the same ``updates``)."""

    @property
    def updates(self) -> Mapping[Any, Sequence[Rewrite]]: ...  # keyed by Target

    def write_failed(self, pk: Any, column: Any, reason: str) -> None:
        """The database refused row ``pk``'s write (first in ``column``); drop its rewrites."""


def _quote(connection: Any, name: str) -> str:
    return connection.ops.quote_name(name)


def _set_and_compared(connection: Any, target: Target) -> tuple[str, str]:
    """The quoted column an update sets and the one its compare-and-swap compares."""
    set_column, compared = (target, target) if isinstance(target, str) else target
    return _quote(connection, set_column), _quote(connection, compared)


def read_rows(
    connection: Any, table: Table, after: Any, limit: int, upto: Any = None
) -> list[tuple[Any, ...]]:
    """One keyset page: the pk and the encrypted columns of up to ``limit`` rows with
    ``after < pk <= upto`` (either bound may be ``None``: open)."""
    quoted_pk = _quote(connection, table.pk_column)
    columns = ", ".join(_quote(connection, column) for _, column in table.columns)
    conditions, params = [], []
    if after is not None:
        conditions.append(f"{quoted_pk} > %s")
        params.append(after)
    if upto is not None:
        conditions.append(f"{quoted_pk} <= %s")
        params.append(upto)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    table_name = _quote(connection, table.table)
    sql = f"SELECT {quoted_pk}, {columns} FROM {table_name}{where} ORDER BY {quoted_pk} LIMIT %s"  # noqa: S608
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, limit])
            return cursor.fetchall()
    except OperationalError as exc:
        if connection.vendor != "sqlite" or "decode" not in str(exc):
            raise
    # SQLite holds a TEXT value that is not UTF-8 in this page (it stores any bytes it is
    # given), and sqlite3 refuses the whole page. Read the page again with such values as
    # bytes, so that one row fails alone ("not UTF-8") instead of the run.
    safe = ", ".join(
        f"CASE WHEN typeof({column}) = 'text' THEN CAST({column} AS BLOB) ELSE {column} END, "
        f"typeof({column})"
        for column in (_quote(connection, column) for _, column in table.columns)
    )
    sql = f"SELECT {quoted_pk}, {safe} FROM {table_name}{where} ORDER BY {quoted_pk} LIMIT %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [_decoded(row) for row in cursor.fetchall()]


def _decoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row read with each value beside its SQLite type: text back to ``str``, or to
    ``UndecodableText`` when it is not UTF-8; every other value as it was."""
    values: list[Any] = [row[0]]
    for value, kind in zip(row[1::2], row[2::2], strict=True):
        if kind == "text":
            try:
                value = bytes(value).decode()
            except UnicodeDecodeError:
                value = UndecodableText(value)
        values.append(value)
    return tuple(values)


def pages(
    connection: Any, table: Table, limit: int, after: Any = None, upto: Any = None
) -> Iterator[list[tuple[Any, ...]]]:
    """``read_rows`` page after page until the range is walked. Each page is read only when
    the previous one has been dealt with (written and committed, in a real run)."""
    while rows := read_rows(connection, table, after, limit, upto):
        yield rows
        after = rows[-1][0]


def chunk_bounds(
    connection: Any, table: Table, chunk_rows: int, on_page: Callable[[], None] = lambda: None
) -> list[tuple[Any, Any]]:
    """Split a table into ``(lower, upper]`` primary-key ranges of about ``chunk_rows`` rows.

    Reads only the primary key, one page of it at a time; the last range is open-ended, so rows
    inserted during the rotation are covered (they are written under the new key anyway).
    ``on_page`` is called after each page (a rotation refreshes its heartbeat there).
    """
    bounds: list[tuple[Any, Any]] = []
    quoted_pk = _quote(connection, table.pk_column)
    table_name = _quote(connection, table.table)
    lower: Any = None
    while True:
        params: list[Any] = [] if lower is None else [lower]
        where = "" if lower is None else f" WHERE {quoted_pk} > %s"
        sql = f"SELECT {quoted_pk} FROM {table_name}{where} ORDER BY {quoted_pk} LIMIT 1 OFFSET %s"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, chunk_rows - 1])
            row = cursor.fetchone()
        if row is None:
            bounds.append((lower, None))
            return bounds
        upper = _jsonable_pk(row[0])
        bounds.append((lower, upper))
        lower = upper
        on_page()


def write_rows(connection: Any, table: Table, batch: Rewrites) -> None:
    """Compare-and-swap every rewrite: a row the application changed since it was read keeps
    the application's value.

    When the database refuses the batch (a CHECK constraint or a trigger on one row), it is
    written again row by row, each row in its own savepoint; a row refused again keeps every
    value it had and is reported to ``batch.write_failed``, the others are written.
    """
    try:
        with transaction.atomic(using=connection.alias):
            _write_batch(connection, table, batch)
    except DatabaseError:
        _write_row_by_row(connection, table, batch)


def _write_batch(connection: Any, table: Table, batch: Rewrites) -> None:
    if connection.vendor == "postgresql":
        _write_rows_postgresql(connection, table, batch)
        return
    quoted_table = _quote(connection, table.table)
    quoted_pk = _quote(connection, table.pk_column)
    with connection.cursor() as cursor:
        for column, params in batch.updates.items():
            for extra, group in _by_index_columns(table, column, params):
                assignments = "".join(f", {_quote(connection, name)} = %s" for name in extra)
                quoted, compared = _set_and_compared(connection, column)
                if extra:  # the parameters in the statement's order
                    group = [(new, *digests, pk, old) for new, pk, old, *digests in group]
                cursor.executemany(
                    f"UPDATE {quoted_table} SET {quoted} = %s{assignments} "  # noqa: S608
                    f"WHERE {quoted_pk} = %s AND {compared} = %s",
                    group,
                )


def _by_index_columns(
    table: Table, column: Target, rewrites: Sequence[Rewrite]
) -> list[tuple[tuple[str, ...], Sequence[Rewrite]]]:
    """``rewrites`` of ``column`` in groups by the index columns each also sets: none for a
    plain rewrite (or an index walk's), every slot's for a rewrite that carries its blind
    index (a conversion's)."""
    index = None
    if isinstance(column, str):
        index = next((i for i in table.indexes.values() if i.field.column == column), None)
    if index is None:
        return [((), rewrites)]
    plain = [rewrite for rewrite in rewrites if len(rewrite) == 3]
    indexed = [rewrite for rewrite in rewrites if len(rewrite) > 3]
    return [group for group in (((), plain), (index.columns, indexed)) if group[1]]


def _write_row_by_row(connection: Any, table: Table, batch: Rewrites) -> None:
    rows: dict[Any, list[tuple[Target, Rewrite]]] = {}
    for column, params in batch.updates.items():
        for rewrite in params:
            rows.setdefault(rewrite[1], []).append((column, rewrite))
    quoted_table = _quote(connection, table.table)
    quoted_pk = _quote(connection, table.pk_column)
    refused = []
    for pk, writes in rows.items():
        column = writes[0][0]
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                for column, rewrite in writes:
                    ((extra, _group),) = _by_index_columns(table, column, [rewrite])
                    assignments = "".join(f", {_quote(connection, name)} = %s" for name in extra)
                    quoted, compared = _set_and_compared(connection, column)
                    new, _pk, old, *digests = rewrite
                    cursor.execute(
                        f"UPDATE {quoted_table} SET {quoted} = %s{assignments} "  # noqa: S608
                        f"WHERE {quoted_pk} = %s AND {compared} = %s",
                        [new, *digests, pk, old],
                    )
        except DatabaseError as exc:
            refused.append((pk, column, database_error_reason(exc)))
    for pk, column, reason in refused:
        batch.write_failed(pk, column, reason)


def database_error_reason(exc: DatabaseError) -> str:
    """What a failure row says of a refused write (``describe_error``: class, SQLSTATE,
    constraint; never the text, whose DETAIL quotes the row's values)."""
    return f"{describe_error(exc)} when writing the re-encrypted row; the row was left as it was"


def _write_rows_postgresql(connection: Any, table: Table, batch: Rewrites) -> None:
    """``write_rows`` on PostgreSQL: one ``UPDATE ... FROM unnest(...)`` per column for the whole
    batch, bound on the server in binary with psycopg 3 (docs/benchmarks.md has why)."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    marker = "%b" if is_psycopg3 else "%s"  # psycopg2 binds on the client: ARRAY[...] literals
    quoted_table = _quote(connection, table.table)
    quoted_pk = _quote(connection, table.pk_column)
    statements = []
    for column, all_params in batch.updates.items():
        for extra, params in _by_index_columns(table, column, all_params):
            quoted, compared = _set_and_compared(connection, column)
            digests = [f"i{position}" for position in range(len(extra))]
            assignments = "".join(
                f", {_quote(connection, name)} = v.{alias}"
                for name, alias in zip(extra, digests, strict=True)
            )
            sql = (
                f"UPDATE {quoted_table} AS t SET {quoted} = v.new{assignments} "  # noqa: S608
                # A slot no key fills is all NULL, an array whose type must be given.
                f"FROM unnest({', '.join([marker] * 3 + [f'{marker}::bytea[]'] * len(extra))}) "
                f"AS v({', '.join(['pk', 'new', 'old', *digests])}) "
                f"WHERE t.{quoted_pk} = v.pk AND t.{compared} = v.old"
            )
            new, pks, old, *indexes = (
                [row[index] for row in params] for index in range(3 + len(extra))
            )
            arguments: list[Any] = [pks, new, old, *indexes]
            if all(type(pk) is int for pk in pks):
                sql += f" AND t.{quoted_pk} BETWEEN {marker} AND {marker}"
                arguments += [min(pks), max(pks)]
            statements.append((sql, arguments))
    if not statements:
        return
    if not is_psycopg3:
        with connection.cursor() as cursor:
            for sql, arrays in statements:
                cursor.execute(sql, arrays)
        return
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        for sql, arrays in statements:
            # Not prepared, as with Django's own cursors: a batch is one statement, so preparing
            # saves nothing, and a named prepared statement breaks behind a pooling proxy.
            cursor.execute(sql, arrays, prepare=False)


def count_rows(connection: Any, table: Table) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {_quote(connection, table.table)}")  # noqa: S608
        return int(cursor.fetchone()[0])


def _jsonable_pk(pk: Any) -> Any:
    """A primary key as a chunk's bounds and cursor store it (a JSON field)."""
    return pk if isinstance(pk, (int, str)) else str(pk)
