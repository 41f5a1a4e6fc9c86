"""Rotation: the one service function behind the management command, the Celery task and the
Python API (``KeyRotationService``), so all three behave the same.

The protocol (DESIGN §4), each step resumable:

1. **Lock.** At most one ``RotationRun`` is ``running`` (a partial unique index); that row is
   the lock. A run whose holder died (its pid is gone on this host, or its heartbeat is older
   than ``LOCK_TIMEOUT_SECONDS``) is taken over and resumed, never restarted.
2. **Backup.** The new key is generated and wrapped first, stored on the run, then every key
   (and the new one) is written to ``BACKUP_DIR`` and flushed, before anything changes.
3. **Activate.** One transaction demotes the old primary and inserts the new key as primary.
   Then the run waits ``KEY_CACHE_SECONDS``, so every process has dropped its cached primary
   before rows are walked: values written from then on are already under the new key.
4. **Re-encrypt.** Each table is walked by primary key in batches (keyset pagination, only the
   pk and the encrypted columns). Values already under the new key are skipped. Each batch is
   one transaction that writes with compare-and-swap (``WHERE pk = %s AND col = <old value>``,
   so an application write made meanwhile wins), records undecryptable values (model, pk,
   field; never the value) and advances the run's cursor.
5. **Census.** A read-only pass counts values per key id from their headers. An old key is
   retired only if no value is under it and no value failed; a retired key's material is
   destroyed only after ``RETENTION_DAYS`` and a clean census.
6. **Record.** The run row gets its end, status and counts; the report is returned.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, IntegrityError, connections, models, transaction
from django.db.models import F
from django.utils import timezone

from .ciphers import AeadCipher
from .conf import encryption_settings
from .encryptor import open_value
from .envelope import (
    ASCII_PREFIX_V1,
    FERNET_TEXT_PREFIX,
    MAGIC,
    header_for,
    parse,
)
from .exceptions import DataEncryptionError, DecryptionError
from .keys import (
    PendingKey,
    cipher_for,
    create_data_key,
    generate_wrapped_key,
    key_database,
    reset_key_ring,
)
from .models import (
    DataKey,
    KeyState,
    RotationChunk,
    RotationFailure,
    RotationRun,
    RunStatus,
    format_key_id,
)

logger = logging.getLogger("data_encryption.rotation")

ModelConfiguration = Sequence[tuple[type[models.Model], Sequence[str]]]
MAX_FAILURES_IN_REPORT = 100

# Census labels for values that are not under a data key.
NULL = "null"
LEGACY = "legacy-fernet"
UNENCRYPTED = "not-encrypted"


class LockLost(DataEncryptionError):
    """Another process took this run over (it judged this one dead); this one stops at once."""


@dataclass
class Table:
    """One table to walk: its primary key and the encrypted columns to rewrite."""

    label: str
    table: str
    pk_column: str
    columns: list[tuple[str, str]]  # (field name, column name)

    def __repr__(self) -> str:
        return f"<Table {self.label}: {', '.join(name for name, _ in self.columns)}>"


def resolve_tables(configuration: ModelConfiguration) -> list[Table]:
    """Turn ``[(Model, ["field", ...]), ...]`` into tables, checking every name."""
    tables: dict[str, Table] = {}
    for model, names in configuration:
        for name in names:
            try:
                model_field = model._meta.get_field(name)
            except Exception:
                raise ImproperlyConfigured(
                    f"{model._meta.label} has no field {name!r} to rotate. Fix "
                    "_load_model_configurations() or ENCRYPTION_KEY_ROTATION['MODELS']."
                ) from None
            if not isinstance(model_field, models.Field) or model_field.is_relation:
                raise ImproperlyConfigured(
                    f"{model._meta.label}.{name} is not a column that can hold encrypted values."
                )
            owner = model_field.model._meta.concrete_model
            assert owner is not None and model_field.column is not None
            label = owner._meta.label
            table = tables.setdefault(
                label, Table(label, owner._meta.db_table, owner._meta.pk.column, [])
            )
            entry = (model_field.name, model_field.column)
            if entry not in table.columns:
                table.columns.append(entry)
    return list(tables.values())


# How often a process walking a run's chunks writes the run row: its heartbeat, the check that
# it still holds the run, and the live counters. Far below LOCK_TIMEOUT_SECONDS.
HEARTBEAT_SECONDS = 1.0

# The run row's counters and the chunk counters they sum.
RUN_COUNTERS = {
    "records_processed": "rows",
    "records_reencrypted": "reencrypted",
    "failed_records": "failed",
}


class Progress:
    """Told how a rotation goes. Does nothing; the command's terminal progress bar overrides it."""

    def phase(self, name: str, detail: str = "") -> None:
        pass

    def start_table(self, label: str, total: int, done: int) -> None:
        pass

    def advance(self, label: str, rows: int) -> None:
        pass

    def end_table(self, label: str) -> None:
        pass


@dataclass
class Batch:
    """What one batch of rows needs: the writes, the failures and the census of its values."""

    rows: int = 0
    last_pk: Any = None
    updates: dict[str, list[tuple[Any, Any, Any]]] = field(default_factory=dict)
    failures: list[tuple[Any, str, int | None, str]] = field(default_factory=list)
    census: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def failed_rows(self) -> int:
        return len({pk for pk, *_ in self.failures})

    @property
    def rewrites(self) -> int:
        return sum(len(params) for params in self.updates.values())


def value_key_label(raw: Any) -> str:
    """The census label of a stored value, from its header alone: a key id, or a kind."""
    if raw is None:
        return NULL
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    if isinstance(raw, str):
        if raw.startswith(ASCII_PREFIX_V1) and len(raw) > 12:
            return raw[4:12]
        raw = raw.encode("utf-8", "surrogatepass")
    if raw[:3] == MAGIC and len(raw) >= 8:
        return format_key_id(int.from_bytes(raw[4:8], "big"))
    if raw[:6] == FERNET_TEXT_PREFIX:
        return LEGACY
    return UNENCRYPTED


def examine_rows(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[tuple[str, str]],
    key_id: int | None,
    cipher: AeadCipher | None,
    *,
    rewrite: bool,
) -> Batch:
    """Decide, row by row, what rotation does with each value (pure: no database access).

    Values under ``key_id`` are counted and left. Others are decrypted; with ``rewrite`` they
    are re-sealed under ``key_id`` in the form they were stored in (ASCII for text columns). A
    value that does not decrypt becomes a failure and is left as it is.
    """
    # This runs once per stored value, so the common value, a binary envelope, takes a short
    # path: it is counted under its 4 key id bytes (each distinct id is formatted once, at the
    # end, into the label value_key_label gives it) and sealed with one bound call. Anything
    # else gets its label from value_key_label. The decisions are the same for both.
    batch = Batch()
    target_label = format_key_id(key_id)
    target_id = None if key_id is None else key_id.to_bytes(4, "big")
    header = None if key_id is None else header_for(key_id)
    seal = cipher.seal if rewrite and cipher is not None and key_id is not None else None
    names = [name for name, _ in columns]
    counts: list[Counter[bytes | str]] = [Counter() for _ in columns]
    updates: list[list[tuple[Any, Any, Any]]] = [[] for _ in columns]
    for row in rows:
        pk = row[0]
        batch.rows += 1
        for name, counted, rewrites, raw in zip(names, counts, updates, row[1:], strict=True):
            token: bytes | str
            if type(raw) is bytes and len(raw) >= 8 and raw[:3] == MAGIC:
                token = raw[4:8]
            else:
                if isinstance(raw, memoryview):
                    raw = bytes(raw)
                token = value_key_label(raw)
            if token in (target_id, NULL, target_label):
                counted[token] += 1
                continue
            try:
                plaintext = open_value(raw)
            except DecryptionError as exc:
                batch.failures.append((pk, name, exc.key_id, str(exc)[:300]))
                counted[token] += 1
                continue
            if seal is None or header is None:
                counted[token] += 1
                continue
            sealed = header + seal(plaintext, header)
            new: Any = parse(sealed).to_ascii() if isinstance(raw, str) else sealed
            rewrites.append((new, pk, raw))
            counted[target_label] += 1
        batch.last_pk = pk
    for name, (_, column), counted, rewrites in zip(names, columns, counts, updates, strict=True):
        for token, count in counted.items():
            if isinstance(token, bytes):
                token = format_key_id(int.from_bytes(token, "big"))
            batch.census[(name, token)] += count
        if rewrites:
            batch.updates[column] = rewrites
    return batch


def _quote(connection: Any, name: str) -> str:
    # Every identifier in our SQL comes from model metadata and goes through the backend's
    # quoting; values always travel as parameters. (Hence the S608 waivers below.)
    return connection.ops.quote_name(name)


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
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return cursor.fetchall()


def chunk_bounds(connection: Any, table: Table, chunk_rows: int) -> list[tuple[Any, Any]]:
    """Split a table into ``(lower, upper]`` primary-key ranges of about ``chunk_rows`` rows.

    Reads only the primary key, one page of it at a time; the last range is open-ended, so rows
    inserted during the rotation are covered (they are written under the new key anyway).
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


def write_rows(connection: Any, table: Table, batch: Batch) -> None:
    """Compare-and-swap every rewrite: a row the application changed since it was read keeps
    the application's value."""
    if connection.vendor == "postgresql":
        _write_rows_postgresql(connection, table, batch)
        return
    quoted_table = _quote(connection, table.table)
    quoted_pk = _quote(connection, table.pk_column)
    with connection.cursor() as cursor:
        for column, params in batch.updates.items():
            quoted = _quote(connection, column)
            cursor.executemany(
                f"UPDATE {quoted_table} SET {quoted} = %s "  # noqa: S608
                f"WHERE {quoted_pk} = %s AND {quoted} = %s",
                params,
            )


def _write_rows_postgresql(connection: Any, table: Table, batch: Batch) -> None:
    """``write_rows`` on PostgreSQL: one statement per column for the whole batch, joining the
    rows to three arrays (primary keys, new values, old values) with the same compare-and-swap
    condition, instead of one ``UPDATE`` per row.

    With integer primary keys the batch's range of keys is added to the condition. It changes
    nothing (every key in the arrays lies inside it), but lets the server read that stretch of
    the index once instead of looking each row up. Other keys go without it: Python and the
    database may order strings differently.

    With psycopg 3 the arrays go in PostgreSQL's binary format on a cursor that binds on the
    server; Django's cursors bind on the client, which spells every value out in the SQL text
    for the server to parse again. That cursor bypasses Django's query log and execute
    wrappers; database errors still become Django's.
    """
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    marker = "%b" if is_psycopg3 else "%s"  # psycopg2 binds on the client: ARRAY[...] literals
    quoted_table = _quote(connection, table.table)
    quoted_pk = _quote(connection, table.pk_column)
    statements = []
    for column, params in batch.updates.items():
        quoted = _quote(connection, column)
        sql = (
            f"UPDATE {quoted_table} AS t SET {quoted} = v.new "  # noqa: S608
            f"FROM unnest({marker}, {marker}, {marker}) AS v(pk, new, old) "
            f"WHERE t.{quoted_pk} = v.pk AND t.{quoted} = v.old"
        )
        new, pks, old = ([row[index] for row in params] for index in range(3))
        arguments: list[Any] = [pks, new, old]
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
    return pk if isinstance(pk, (int, str)) else str(pk)


def this_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_is_alive(holder: str, heartbeat_at: datetime, now: datetime) -> bool:
    """Whether a run's holder may still be working. A process on this host is checked directly
    (a killed rotation is taken over at once); elsewhere, by the age of its heartbeat."""
    timeout = timedelta(seconds=encryption_settings.lock_timeout_seconds)
    if now - heartbeat_at > timeout:
        return False
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


class Rotation:
    """One rotation run over ``tables``. ``run()`` does the whole protocol and returns the report.

    ``clock`` and ``sleep`` are parameters so tests need no clock mocks.
    """

    def __init__(
        self,
        tables: Sequence[Table],
        *,
        using: str | None = None,
        batch_size: int | None = None,
        dry_run: bool = False,
        full_scope: bool = True,
        progress: Progress | None = None,
        trigger: str = "api",
        holder: str | None = None,
        sender: type | None = None,
        clock: Callable[[], datetime] = timezone.now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tables = list(tables)
        self.using = using or key_database()
        self.batch_size = int(batch_size or encryption_settings.batch_size)
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        self.dry_run = dry_run
        self.full_scope = full_scope
        self.progress = progress or Progress()
        self.trigger = trigger
        self.clock = clock
        self.sleep = sleep
        # Celery workers pass the run's holder: they work for the run the orchestrator started.
        self.holder = holder or this_holder()
        self.sender = sender or type(self)  # what signals name as their sender
        self.resumed = False
        self.connection = connections[self.using]
        self._unsaved: Counter[str] = Counter()  # counts not yet added to the run row
        self._saved_at = 0.0  # monotonic; 0: the first batch checks the lock

    # -- the protocol ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """The whole protocol in this process; returns the report."""
        if self.dry_run:
            return self._dry_run()
        started = time.monotonic()
        run = self.start()
        if run is None:
            return self._skipped_report("already_running")
        if run.status != RunStatus.RUNNING:
            return self._report(run, started)
        return self.finish(run, started=started)

    def start(self) -> RotationRun | None:
        """Take the lock, then back up, activate, wait and plan the chunks, resuming whatever a
        dead process left. ``None`` when another rotation holds the lock. After this, the run
        is in phase ``reencrypt`` (or later, when resumed) and its chunks can go to workers, or
        it has status ``failed`` (its ``reason`` says why)."""
        run = self._acquire()
        if run is None:
            return None
        try:
            from .signals import rotation_started

            rotation_started.send_robust(
                sender=self.sender, run_id=run.pk, trigger=self.trigger, resumed=self.resumed
            )
            if run.phase == "backup":
                self._backup(run)
            if run.phase == "activate":
                self._activate(run)
            if run.phase == "wait":
                self._wait(run)
            if run.phase == "plan":
                self._plan(run)
        except Exception as exc:
            self._stopped(run, exc, time.monotonic())
        return run

    def finish(self, run: RotationRun, *, started: float | None = None) -> dict[str, Any]:
        """Re-encrypt every chunk not yet done (all of them in one process; those no worker
        finished under Celery), then census, retire, record; returns the report."""
        try:
            # "finishing": a Celery final step claimed the run (see claim_finish).
            if run.phase in ("reencrypt", "finishing"):
                self._process_pending(run)
                self._save(run, phase="census")
            if run.phase == "census":
                self._census_and_retire(run)
            if run.status == RunStatus.RUNNING:
                self._finish(run)
        except Exception as exc:
            return self._stopped(run, exc, started)
        return self._report(run, started)

    def claim_finish(self, run: RotationRun) -> bool:
        """Whether this caller is the one to finish the run (a final step delivered twice
        finishes it once)."""
        claimed = (
            RotationRun.objects.using(self.using)
            .filter(pk=run.pk, holder=self.holder, status=RunStatus.RUNNING, phase="reencrypt")
            .update(phase="finishing", heartbeat_at=self.clock())
        )
        if claimed:
            run.phase = "finishing"
        return bool(claimed)

    def _stopped(
        self, run: RotationRun, exc: BaseException, started: float | None
    ) -> dict[str, Any]:
        if isinstance(exc, LockLost):
            logger.error("Rotation %s was taken over by another process; this one stopped.", run.pk)
            run.status, run.reason = RunStatus.FAILED, "Taken over by another process."
        elif run.status == RunStatus.RUNNING:
            logger.exception("Rotation %s failed in phase %s.", run.pk, run.phase)
            self._fail(run, exc)
        return self._report(run, started)

    def _acquire(self) -> RotationRun | None:
        now = self.clock()
        queryset = RotationRun.objects.using(self.using)
        running = queryset.filter(status=RunStatus.RUNNING).first()
        if running is not None:
            if holder_is_alive(running.holder, running.heartbeat_at, now):
                return None
            taken = queryset.filter(
                pk=running.pk, holder=running.holder, heartbeat_at=running.heartbeat_at
            ).update(holder=self.holder, heartbeat_at=now)
            if not taken:
                return None  # another process took it over first
            running.holder, running.heartbeat_at = self.holder, now
            self.resumed = True
            logger.warning(
                "Resuming rotation %s (phase %s) left by a process that died.",
                running.pk,
                running.phase,
            )
            return running
        try:
            with transaction.atomic(using=self.using):
                return queryset.create(
                    started_at=now, heartbeat_at=now, holder=self.holder, trigger=self.trigger
                )
        except IntegrityError:
            return None  # another process started one between our read and our insert

    def _save(self, run: RotationRun, **changes: Any) -> None:
        """Update the run row, only while this process still holds it; refresh the heartbeat.

        Counters change with ``F()`` expressions, since several workers add to them at once;
        on ``run`` they become deferred fields, read from the database when next used.
        """
        changes["heartbeat_at"] = self.clock()
        updated = (
            RotationRun.objects.using(self.using)
            .filter(pk=run.pk, holder=self.holder, status=RunStatus.RUNNING)
            .update(**changes)
        )
        if not updated:
            raise LockLost(f"Rotation {run.pk} is no longer held by this process.")
        self._saved_at = time.monotonic()
        for name, value in changes.items():
            if hasattr(value, "resolve_expression"):
                # Deferred rather than re-read now: a batch would pay a SELECT for counters
                # nobody looks at until the run's end. Reading the attribute loads it.
                run.__dict__.pop(name, None)
            else:
                setattr(run, name, value)

    def _backup(self, run: RotationRun) -> None:
        if run.new_key_id is None:
            pending = generate_wrapped_key(self.using)
            old_ids = list(
                DataKey.objects.using(self.using)
                .exclude(state=KeyState.DESTROYED)
                .values_list("key_id", flat=True)
            )
            self._save(
                run,
                new_key_id=pending.key_id,
                new_wrapped_key=pending.wrapped_key,
                new_key_fingerprint=pending.master_key_fingerprint,
                old_key_ids=old_ids,
            )
        self.progress.phase("backup", "writing the key backup")
        from .backups import write_backup

        path = write_backup(now=self.clock(), pending=self._pending(run), using=self.using)
        self._save(run, key_backup_path=str(path), phase="activate")
        logger.info("Rotation %s: key backup written to %s.", run.pk, path)

    def _pending(self, run: RotationRun) -> PendingKey:
        assert run.new_key_id is not None and run.new_wrapped_key is not None
        return PendingKey(run.new_key_id, bytes(run.new_wrapped_key), run.new_key_fingerprint)

    def _activate(self, run: RotationRun) -> None:
        self.progress.phase("activate", f"new primary key {format_key_id(run.new_key_id)}")
        now = self.clock()
        with transaction.atomic(using=self.using):
            self._save(run)  # write first: SQLite then takes its write lock up front
            keys = DataKey.objects.using(self.using)
            if not keys.filter(key_id=run.new_key_id).exists():
                keys.filter(state=KeyState.PRIMARY).update(
                    state=KeyState.DECRYPT_ONLY, decrypt_only_since=now
                )
                create_data_key(
                    self.using, state=KeyState.PRIMARY, now=now, pending=self._pending(run)
                )
            self._save(run, phase="wait")
        reset_key_ring()
        logger.info("Rotation %s: data key %s is primary.", run.pk, format_key_id(run.new_key_id))

    def _wait(self, run: RotationRun) -> None:
        """Let every process's cached key ring expire, so no one still encrypts with the old key
        while rows are walked."""
        primary = DataKey.objects.using(self.using).get(key_id=run.new_key_id)
        since = primary.primary_since or primary.created_at
        until = since + timedelta(seconds=encryption_settings.key_cache_seconds)
        while (remaining := (until - self.clock()).total_seconds()) > 0:
            self.progress.phase(
                "wait", f"{remaining:.0f}s for other processes to pick up the new key"
            )
            self.sleep(min(remaining, 5.0))
            self._save(run)
        self._save(run, phase="plan")

    def _plan(self, run: RotationRun) -> None:
        """Split every table into chunks (idempotent: a resumed plan starts over cleanly)."""
        chunk_rows = encryption_settings.chunk_rows
        with transaction.atomic(using=self.using):
            self._save(run)
            chunks = RotationChunk.objects.using(self.using)
            chunks.filter(run=run).delete()
            chunks.bulk_create(
                [
                    RotationChunk(
                        run=run,
                        model=table.label,
                        index=index,
                        lower=lower,
                        upper=upper,
                        cursor=lower,
                    )
                    for table in self.tables
                    for index, (lower, upper) in enumerate(
                        chunk_bounds(self.connection, table, chunk_rows)
                    )
                ]
            )
            self._save(run, phase="reencrypt")

    def pending_chunks(self, run: RotationRun) -> list[RotationChunk]:
        return list(
            RotationChunk.objects.using(self.using).filter(run=run, done=False).order_by("id")
        )

    def table(self, label: str) -> Table:
        for table in self.tables:
            if table.label == label:
                return table
        raise ImproperlyConfigured(
            f"Rotation {label} is no longer among the configured models; configure it again or "
            "finish the rotation with the configuration it started with."
        )

    def _process_pending(self, run: RotationRun) -> None:
        """Every chunk not yet done, table by table, with the table's progress shown whole."""
        pending = self.pending_chunks(run)
        walked = self.models_progress(run)  # rows already done, when resuming
        for label in dict.fromkeys(chunk.model for chunk in pending):
            table = self.table(label)
            done = walked.get(label, {}).get("rows", 0)
            self.progress.start_table(label, count_rows(self.connection, table), done)
            for chunk in pending:
                if chunk.model == label:
                    self.process_chunk(run, chunk)
            self.progress.end_table(label)

    def process_chunk(self, run: RotationRun, chunk: RotationChunk) -> None:
        """Re-encrypt one chunk from its cursor, batch by batch. Safe to run again: the cursor
        moves with each committed batch, and values already under the new key are skipped."""
        if chunk.done:
            return
        table = self.table(chunk.model)
        assert run.new_key_id is not None
        cipher = cipher_for(run.new_key_id)
        chunks = RotationChunk.objects.using(self.using).filter(pk=chunk.pk)
        if chunk.started_at is None:
            chunk.started_at = self.clock()
            chunks.filter(started_at=None).update(started_at=chunk.started_at)
        while True:
            rows = read_rows(self.connection, table, chunk.cursor, self.batch_size, chunk.upper)
            if not rows:
                chunk.done, chunk.finished_at = True, self.clock()
                chunks.update(done=True, finished_at=chunk.finished_at)
                self._count(run, None)
                break
            batch = examine_rows(rows, table.columns, run.new_key_id, cipher, rewrite=True)
            cursor = _jsonable_pk(batch.last_pk)
            with transaction.atomic(using=self.using):
                write_rows(self.connection, table, batch)
                self._record_failures(run, table, batch)
                chunks.update(
                    cursor=cursor,
                    rows=F("rows") + batch.rows,
                    reencrypted=F("reencrypted") + batch.rewrites,
                    failed=F("failed") + batch.failed_rows,
                )
                self._count(run, batch)
            chunk.cursor = cursor
            chunk.rows += batch.rows
            self.progress.advance(table.label, batch.rows)

    def _count(self, run: RotationRun, batch: Batch | None) -> None:
        """Add a batch to the run row's live counters (``None``: a chunk ended, write now).

        Every worker of a run would otherwise update that one row after every batch, waiting on
        each other's row lock, so the counters go out with the heartbeat (and the check that this
        process still holds the run) at most every ``HEARTBEAT_SECONDS``. The chunks' own
        counters move with each batch; the run's exact totals are their sums, taken when the
        walk is over (``_census_and_retire``).
        """
        unsaved = self._unsaved
        if batch is not None:
            unsaved["records_processed"] += batch.rows
            unsaved["records_reencrypted"] += batch.rewrites
            unsaved["failed_records"] += batch.failed_rows
            if time.monotonic() - self._saved_at < HEARTBEAT_SECONDS:
                return
        self._save(run, **{name: F(name) + count for name, count in unsaved.items() if count})
        unsaved.clear()

    def _record_failures(self, run: RotationRun, table: Table, batch: Batch) -> None:
        if not batch.failures:
            return
        RotationFailure.objects.using(self.using).bulk_create(
            [
                RotationFailure(
                    run=run,
                    model=table.label,
                    pk_value=str(pk),
                    field=name,
                    key_id=key_id,
                    error=error,
                )
                for pk, name, key_id, error in batch.failures
            ],
            ignore_conflicts=True,
        )
        for pk, name, key_id, _error in batch.failures:
            logger.error(
                "Rotation %s: %s pk=%s field %s could not be decrypted (key %s); left as it was.",
                run.pk,
                table.label,
                pk,
                name,
                format_key_id(key_id),
            )

    def census(self, *, primary_id: int | None = None) -> dict[str, dict[str, dict[str, int]]]:
        """Values per key per model and field, from headers only (read-only, no decryption)."""
        result: dict[str, dict[str, dict[str, int]]] = {}
        for table in self.tables:
            self.progress.phase("census", table.label)
            counts: Counter[tuple[str, str]] = Counter()
            after = None
            while rows := read_rows(self.connection, table, after, self.batch_size):
                after = rows[-1][0]
                for row in rows:
                    for (name, _column), raw in zip(table.columns, row[1:], strict=True):
                        counts[(name, value_key_label(raw))] += 1
            per_field: dict[str, dict[str, int]] = {name: {} for name, _ in table.columns}
            for (name, label), count in sorted(counts.items()):
                per_field[name][label] = count
            result[table.label] = per_field
        return result

    def models_progress(self, run: RotationRun) -> dict[str, dict[str, int]]:
        """Rows, rewrites and failures per model, summed over the run's chunks."""
        totals: dict[str, dict[str, int]] = {}
        chunks = RotationChunk.objects.using(self.using).filter(run=run)
        for chunk in chunks.values("model", *RUN_COUNTERS.values()):
            entry = totals.setdefault(chunk["model"], dict.fromkeys(RUN_COUNTERS.values(), 0))
            for name in RUN_COUNTERS.values():
                entry[name] += chunk[name]
        return totals

    def _census_and_retire(self, run: RotationRun) -> None:
        run.refresh_from_db(using=self.using)
        progress, counters = self._exact_counters(run)
        census = self.census()
        totals = census_totals(census)
        now = self.clock()
        retention = timedelta(days=encryption_settings.retention_days)
        retired, destroyed, notes = list(run.retired_key_ids), list(run.destroyed_key_ids), []
        blocked = self._retirement_blocker(run, totals)
        with transaction.atomic(using=self.using):
            self._save(run)  # write first: SQLite then takes its write lock up front
            keys = DataKey.objects.using(self.using).select_for_update()
            for key in keys.exclude(state__in=[KeyState.PRIMARY, KeyState.DESTROYED]):
                in_use = totals.get(key.hex_id, 0)
                if blocked or in_use:
                    notes.append(
                        f"key {key.hex_id} stays {key.state}: "
                        + (blocked or f"{in_use} values are still under it")
                    )
                    continue
                if key.state == KeyState.DECRYPT_ONLY:
                    key.state, key.retired_at = KeyState.RETIRED, now
                    key.save(using=self.using, update_fields=["state", "retired_at"])
                    retired.append(key.key_id)
                elif key.retired_at is not None and now - key.retired_at >= retention:
                    key.state, key.destroyed_at, key.wrapped_key = KeyState.DESTROYED, now, None
                    key.save(
                        using=self.using, update_fields=["state", "destroyed_at", "wrapped_key"]
                    )
                    destroyed.append(key.key_id)
            if totals.get(LEGACY):
                notes.append(f"{totals[LEGACY]} legacy Fernet values remain")
            if totals.get(UNENCRYPTED):
                notes.append(f"{totals[UNENCRYPTED]} values are not encrypted")
            self._save(
                run,
                census=census,
                retired_key_ids=retired,
                destroyed_key_ids=destroyed,
                reason="; ".join(notes),
                phase="done",
                **counters,
                models_processed=len(self.tables),
                progress=progress,
            )
        reset_key_ring()

    def _exact_counters(self, run: RotationRun) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
        """The run's counts per model and in total, over every chunk whoever walked it (the run
        row's counts are live counts, up to ``HEARTBEAT_SECONDS`` behind per process). The
        totals are also set on ``run``."""
        progress = self.models_progress(run)
        counters = {
            counter: sum(counts[name] for counts in progress.values())
            for counter, name in RUN_COUNTERS.items()
        }
        for counter, total in counters.items():
            setattr(run, counter, total)
        return progress, counters

    def _retirement_blocker(self, run: RotationRun, totals: dict[str, int]) -> str:
        if run.failed_records:
            return f"{run.failed_records} rows could not be decrypted"
        if not self.full_scope:
            return "the run was limited to some models, so the census is incomplete"
        return ""

    def _finish(self, run: RotationRun) -> None:
        status = RunStatus.FAILED if run.failed_records else RunStatus.COMPLETED
        self._save(run, status=status, finished_at=self.clock())
        logger.info(
            "Rotation %s %s: %s records, %s re-encrypted, %s failed.",
            run.pk,
            status,
            run.records_processed,
            run.records_reencrypted,
            run.failed_records,
        )

    def _fail(self, run: RotationRun, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        # Our own exceptions never carry key material or plaintext, nor do database errors
        # (parameters are not in their messages); anything else is named only.
        if not isinstance(exc, (DataEncryptionError, ImproperlyConfigured, OSError, DatabaseError)):
            reason = f"{type(exc).__name__} (see the log for the traceback)"
        # The counts a failed run reports are exact too, not the live counts of the run row
        # (if the database still answers: recording the failure matters more).
        try:
            counters = self._exact_counters(run)[1]
        except DatabaseError:
            counters = {}
        RotationRun.objects.using(self.using).filter(pk=run.pk, holder=self.holder).update(
            status=RunStatus.FAILED, finished_at=self.clock(), reason=reason, **counters
        )
        run.status, run.finished_at, run.reason = RunStatus.FAILED, self.clock(), reason

    # -- reports --------------------------------------------------------------------------------

    def _report(self, run: RotationRun, started: float | None) -> dict[str, Any]:
        failures = list(
            RotationFailure.objects.using(self.using)
            .filter(run_id=run.pk)
            .values("model", "pk_value", "field", "key_id", "error")[:MAX_FAILURES_IN_REPORT]
        )
        finished = run.finished_at or self.clock()
        return {
            "status": run.status,
            "timestamp": finished.isoformat(),
            "models_processed": run.models_processed or len(self.tables),
            "records_processed": run.records_processed,
            "failed_records": run.failed_records,
            "key_backup_path": run.key_backup_path,
            "run_id": run.pk,
            "dry_run": False,
            "resumed": self.resumed,
            "started_at": run.started_at.isoformat(),
            "duration_seconds": (
                round(time.monotonic() - started, 3)
                if started is not None
                else round((finished - run.started_at).total_seconds(), 3)
            ),
            "records_reencrypted": run.records_reencrypted,
            "new_key_id": format_key_id(run.new_key_id) if run.new_key_id else None,
            "old_key_ids": [format_key_id(key_id) for key_id in run.old_key_ids],
            "retired_key_ids": [format_key_id(key_id) for key_id in run.retired_key_ids],
            "destroyed_key_ids": [format_key_id(key_id) for key_id in run.destroyed_key_ids],
            "models": run.progress or self.models_progress(run),
            "census": run.census,
            "failures": [
                {
                    "model": failure["model"],
                    "pk": failure["pk_value"],
                    "field": failure["field"],
                    "key_id": format_key_id(failure["key_id"]) if failure["key_id"] else None,
                    "error": failure["error"],
                }
                for failure in failures
            ],
            "reason": run.reason,
        }

    def _skipped_report(self, reason: str) -> dict[str, Any]:
        running = RotationRun.objects.using(self.using).filter(status=RunStatus.RUNNING).first()
        detail = (
            f"rotation {running.pk} is already running (held by {running.holder}, last "
            f"heartbeat {running.heartbeat_at.isoformat()})"
            if running
            else "another rotation started at the same moment"
        )
        return {
            "status": RunStatus.SKIPPED,
            "timestamp": self.clock().isoformat(),
            "models_processed": 0,
            "records_processed": 0,
            "failed_records": 0,
            "key_backup_path": "",
            "run_id": running.pk if running else None,
            "dry_run": self.dry_run,
            "skipped": reason,
            "reason": detail,
        }

    def _dry_run(self) -> dict[str, Any]:
        """The same reads and decryptions as a real run; nothing is written, no key is made."""
        started = time.monotonic()
        primary = DataKey.objects.using(self.using).filter(state=KeyState.PRIMARY).first()
        old_ids = list(
            DataKey.objects.using(self.using)
            .exclude(state=KeyState.DESTROYED)
            .values_list("key_id", flat=True)
        )
        census: dict[str, dict[str, dict[str, int]]] = {}
        models_report, failures = {}, []
        records = rewrites = failed = 0
        for table in self.tables:
            self.progress.start_table(table.label, count_rows(self.connection, table), 0)
            counts: Counter[tuple[str, str]] = Counter()
            after, table_rows, table_rewrites, table_failed = None, 0, 0, 0
            while rows := read_rows(self.connection, table, after, self.batch_size):
                # No new key exists yet: every value would be rewritten, so every one is opened.
                batch = examine_rows(rows, table.columns, None, None, rewrite=False)
                after = batch.last_pk
                counts.update(batch.census)
                table_rows += batch.rows
                table_failed += batch.failed_rows
                table_rewrites += sum(
                    count for (_, label), count in batch.census.items() if label != NULL
                ) - len(batch.failures)
                failures += [
                    {
                        "model": table.label,
                        "pk": str(pk),
                        "field": name,
                        "key_id": format_key_id(key_id) if key_id else None,
                        "error": error,
                    }
                    for pk, name, key_id, error in batch.failures
                ]
                self.progress.advance(table.label, batch.rows)
            self.progress.end_table(table.label)
            per_field: dict[str, dict[str, int]] = {name: {} for name, _ in table.columns}
            for (name, label), count in sorted(counts.items()):
                per_field[name][label] = count
            census[table.label] = per_field
            models_report[table.label] = {
                "rows": table_rows,
                "reencrypted": table_rewrites,
                "failed": table_failed,
            }
            records, rewrites, failed = (
                records + table_rows,
                rewrites + table_rewrites,
                (failed + table_failed),
            )
        would_retire = (
            []
            if failed or not self.full_scope
            else [
                format_key_id(key_id) for key_id in old_ids if primary and key_id != primary.key_id
            ]
        )
        now = self.clock()
        return {
            "status": RunStatus.FAILED if failed else RunStatus.COMPLETED,
            "timestamp": now.isoformat(),
            "models_processed": len(self.tables),
            "records_processed": records,
            "failed_records": failed,
            "key_backup_path": "",
            "run_id": None,
            "dry_run": True,
            "resumed": False,
            "started_at": now.isoformat(),
            "duration_seconds": round(time.monotonic() - started, 3),
            "records_reencrypted": rewrites,
            "new_key_id": None,
            "old_key_ids": [format_key_id(key_id) for key_id in old_ids],
            "retired_key_ids": would_retire,
            "destroyed_key_ids": [],
            "models": models_report,
            "census": census,
            "failures": failures[:MAX_FAILURES_IN_REPORT],
            "reason": (
                f"dry run: {failed} rows could not be decrypted; no key would be retired"
                if failed
                else "dry run: nothing was written"
            ),
        }


def census_totals(census: dict[str, dict[str, dict[str, int]]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for fields in census.values():
        for labels in fields.values():
            totals.update(labels)
    return dict(totals)
